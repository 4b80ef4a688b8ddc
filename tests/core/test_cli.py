"""The installed command keeps its own contract: help exits 0, mistakes exit 2 with the closest spelling, lint takes
paths and options in any order, the invoke tasks run the same actions, completion and a plain install work."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from deploypipe.cli import main
from deploypipe.cli.parser import LINT_FORMATS, LINT_SEVERITIES, build_parser
from deploypipe.cli.tasks import ns
from deploypipe.commands.lint import FORMATS
from deploypipe.core.findings import SEVERITIES

ROOT = Path(__file__).resolve().parents[2]
DEPLOYPIPE = str(Path(sys.executable).parent / "deploypipe")
COMMANDS = build_parser().commands
REQUIRED = {"apply-migrations": ["sql", "migrations"], "ci-summary": ["report.json"], "completion": ["bash"], "restore": ["--backup", "b1", "--target", "t"]}


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    """``deploypipe ARGV`` in this process: (exit code, stdout, stderr)."""
    try:
        code = main(list(argv))
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def _installed(*argv: str, cwd: Path = ROOT, **kwargs) -> subprocess.CompletedProcess[str]:
    """The real installed entry point in a child process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "DEPLOYPIPE_", "CI"))}
    return subprocess.run([DEPLOYPIPE, *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
                          **kwargs)


def _typo(word: str) -> str:
    """``word`` with one letter dropped (``deploy`` -> ``depoy``)."""
    cut = len(word) // 2 + (1 if word.startswith("--") else 0)
    return word[:cut] + word[cut + 1:]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_of_every_command_exits_0_with_its_options_defaults_and_an_example(capsys, command):
    code, out, err = _run(capsys, command, "--help")
    assert (code, err) == (0, "")
    assert out.startswith(f"usage: deploypipe {command} ") and "\nexample:\n  " in out
    assert _run(capsys, "help", command) == (0, out, "")


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_an_unknown_option_of_every_command_exits_2_naming_the_closest_option(capsys, command):
    options = [o for a in COMMANDS[command]._actions for o in a.option_strings if o.startswith("--") and o != "--help"]
    option = options[0] if options else "--help"
    code, out, err = _run(capsys, command, _typo(option), *REQUIRED.get(command, []))
    assert (code, out) == (2, "")
    assert err == (f"deploypipe {command}: unknown option '{_typo(option)}'; did you mean '{option}'? "
                   f"(`deploypipe {command} --help` lists what it takes)\n")


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_typo_in_every_command_exits_2_naming_the_command(capsys, command):
    code, out, err = _run(capsys, _typo(command))
    assert (code, out) == (2, "")
    assert err == (f"deploypipe: unknown command '{_typo(command)}'; did you mean '{command}'? "
                   "(`deploypipe --help` lists what it takes)\n")


def test_no_command_prints_the_products_commands_one_line_each_and_exits_0(capsys):
    code, out, err = _run(capsys)
    assert (code, err) == (0, "")
    assert out == _run(capsys, "--help")[1] == _run(capsys, "help")[1]
    listed = [line.split()[0] for line in out.splitlines() if line.startswith("    ") and not line.startswith("     ")]
    assert listed == list(COMMANDS)
    assert "--prompt-for-sudo-password" not in out and "--write-pyc" not in out  # invoke's core options are gone


@pytest.mark.parametrize(("argv", "message"), [
    (["lint", "--format", "txt"], "deploypipe lint: argument -f/--format: invalid choice 'txt' (expected one of: "
                                  "text, json, github, sarif); did you mean 'text'?"),
    (["deploy", "--wait-lock"], "deploypipe deploy: argument --wait-lock: expected one argument"),
    (["deploy", "--wait-lock", "soon"], "deploypipe deploy: argument --wait-lock: invalid float value: 'soon'"),
    (["restore", "--backup", "b1"], "deploypipe restore: the following arguments are required: --target"),
    (["rollback", "--to", "dep-1", "--run", "r1"], "deploypipe rollback: argument --run: not allowed with argument "
                                                    "--to"),
    (["help", "depoy"], "deploypipe help: unknown command 'depoy'; did you mean 'deploy'?"),
    (["--verison"], "deploypipe: unknown option '--verison'; did you mean '--version'?"),
    (["plan", "pipelines/local.yaml"], "deploypipe plan: unexpected argument 'pipelines/local.yaml'"),
])
def test_a_missing_or_bad_value_exits_2_with_one_line(capsys, argv, message):
    code, out, err = _run(capsys, *argv)
    assert (code, out) == (2, "")
    assert err.splitlines() == [f"{message} (`{message.split(':')[0]} --help` lists what it takes)"]


def test_the_issues_table_through_the_installed_command():
    assert _installed("restore", "--help").returncode == 0
    assert _installed("replay", "--help").returncode == 0
    typo = _installed("depoy")
    assert (typo.returncode, typo.stderr) == (2, "deploypipe: unknown command 'depoy'; did you mean 'deploy'? "
                                                 "(`deploypipe --help` lists what it takes)\n")
    bogus = _installed("deploy", "--forse")
    assert (bogus.returncode, bogus.stderr) == (2, "deploypipe deploy: unknown option '--forse'; did you mean "
                                                   "'--force'? (`deploypipe deploy --help` lists what it takes)\n")
    helped = _installed("help", "deploy")
    assert helped.returncode == 0 and helped.stdout.startswith("usage: deploypipe deploy ")
    linted = _installed("lint", "--format", "text", "render.yaml")
    assert (linted.returncode, linted.stdout) == (0, "no findings in 1 file\n"), linted.stderr


def _project(tmp_path: Path) -> Path:
    (tmp_path / "render.yaml").write_text("services:\n  - {type: web, name: api, startCommand: run}\n")
    (tmp_path / "m.sql").write_text("ALTER TABLE notes ADD COLUMN body text NOT NULL;\n")
    return tmp_path


def test_lint_takes_paths_and_options_in_any_order(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(_project(tmp_path))
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    first = _run(capsys, "lint", "--format", "json", "--fail-on", "info", "render.yaml", "m.sql")
    assert first[0] == 1 and {f["path"] for f in json.loads(first[1])} == {"render.yaml", "m.sql"}
    for argv in (["render.yaml", "--format", "json", "m.sql", "--fail-on", "info"],
                 ["render.yaml", "m.sql", "--fail-on=info", "-f", "json"],
                 ["--fail-on", "info", "--json", "--", "render.yaml", "m.sql"]):
        assert _run(capsys, "lint", *argv) == first, argv
    stdin = _run(capsys, "lint", "-")
    assert stdin[0] == 2 and stdin[2].startswith("deploypipe: lint: - (standard input): lint reads files")


def test_json_output_is_the_same_from_deploypipe_and_from_invoke():
    env = {**os.environ, "RENDER_API_KEY": "rnd_plan_key_123456", "DATABASE_URL": "postgresql://app:pw@db/app",
           "CI": "true"}
    argv = ["plan", "--pipeline", "pipelines/production.yaml", "--json"]
    product = subprocess.run([DEPLOYPIPE, *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    task = subprocess.run([sys.executable, "-m", "invoke", *argv], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert product.returncode == task.returncode == 0, product.stderr + task.stderr
    assert json.loads(product.stdout) == json.loads(task.stdout) and product.stdout.startswith("[\n")


def test_invoke_lint_takes_one_positional_path_and_more_by_a_repeated_flag():
    one = subprocess.run([sys.executable, "-m", "invoke", "lint", "render.yaml"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert (one.returncode, one.stdout) == (0, "no findings in 1 file\n"), one.stderr
    more = subprocess.run([sys.executable, "-m", "invoke", "lint", "render.yaml", "--also", "render.yaml", "--format",
                           "json"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert (more.returncode, json.loads(more.stdout)) == (0, [])


def test_every_invoke_task_is_a_deploypipe_command_and_test_is_only_a_task_of_this_repository():
    assert set(ns.task_names) == set(COMMANDS) - {"completion", "help"}
    assert "test" not in COMMANDS
    listed = subprocess.run([sys.executable, "-m", "invoke", "--list"], cwd=ROOT, capture_output=True, text=True,
                            timeout=120).stdout
    assert "  test " in listed


def test_lint_choices_are_the_linters():
    assert (LINT_FORMATS, LINT_SEVERITIES) == (tuple(FORMATS), tuple(SEVERITIES))


def _complete(script: str, *words: str) -> list[str]:
    line = " ".join(f'"{w}"' for w in words)
    bash = textwrap.dedent(f"""\
        {script}
        COMP_WORDS=({line}); COMP_CWORD={len(words) - 1}
        _deploypipe; printf '%s\\n' "${{COMPREPLY[@]}}"
    """)
    return subprocess.run(["bash", "-c", bash], capture_output=True, text=True, check=True, timeout=60).stdout.split()


def test_bash_completion_completes_commands_options_and_choices(capsys):
    code, script, _ = _run(capsys, "completion", "bash")
    assert code == 0
    assert _complete(script, "deploypipe", "dep") == ["deploy"]
    assert _complete(script, "deploypipe", "deploy", "--pi") == ["--pipeline"]
    assert _complete(script, "deploypipe", "lint", "--format", "") == list(FORMATS)
    assert _complete(script, "deploypipe", "completion", "") == ["bash", "zsh"]


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
def test_the_zsh_completion_script_is_valid_zsh(capsys):
    script = _run(capsys, "completion", "zsh")[1]
    subprocess.run(["zsh", "-n", "-c", script], check=True, timeout=60)


_WITHOUT_LOCAL = textwrap.dedent("""\
    import importlib.abc, sys
    class Missing(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in ("starlette", "uvicorn", "h11"):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    sys.meta_path.insert(0, Missing())
    from deploypipe.cli import main
    code = main(sys.argv[1:])
    assert code or not {"starlette", "uvicorn", "h11", "deploypipe.emulator", "deploypipe.local"} & set(sys.modules)
    raise SystemExit(code)
""")


def _without_local(*argv: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RENDER_API_KEY": "rnd_plan_key_123456", "DATABASE_URL": "postgresql://app:pw@db/app"}
    return subprocess.run([sys.executable, "-c", _WITHOUT_LOCAL, *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def test_without_the_local_extra_the_release_commands_run_and_the_local_ones_exit_2_saying_what_to_install():
    for argv in (["--help"], ["deploy", "--help"], ["plan", "--pipeline", "pipelines/production.yaml"],
                 ["lint", "render.yaml"]):
        result = _without_local(*argv)
        assert result.returncode == 0, (argv, result.stderr)
    for argv, where in ((["emulator"], "emulator"), (["replay", "flaky-endpoint"], str(ROOT / "pipelines/local.yaml")), (["clean"], "clean"),
                        (["plan"], str(ROOT / "pipelines/local.yaml"))):
        result = _without_local(*argv)
        assert result.returncode == 2 and re.fullmatch(
            rf"deploypipe: {re.escape(where)}: needs (starlette|uvicorn|h11)\S*, which is not "
            r"installed; hint: install deploypipe\[local\] .*\n", result.stderr), (argv, result.stderr)
