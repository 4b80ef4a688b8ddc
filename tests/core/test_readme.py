"""The README stays true: its stage table is the registry's, it documents every task and replay, its test command is
the one .ci/run runs, and its pipeline example loads."""

from __future__ import annotations

import re
from pathlib import Path

from deploypipe.cli.parser import build_parser
from deploypipe.commands.plan import stage_table
from deploypipe.engine.loader import load_pipeline
from deploypipe.errors import ExitCode
from deploypipe.replays.catalogue import REPLAYS

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start:end if end > 0 else None]


def test_the_stage_table_is_generated_from_the_registry():
    assert stage_table() in README, "regenerate it: python -c 'from deploypipe.commands.plan import stage_table; " \
                                    "print(stage_table())'"


def test_every_command_is_in_the_command_line_table():
    table = _section("Command line")
    documented = set(re.findall(r"^\| `([a-z-]+)", table, re.M))
    commands = set(build_parser().commands)
    assert documented == commands, f"commands missing from the README: {commands - documented}"


def test_every_replay_is_in_the_replay_table():
    table = _section("Incident replays")
    for name, replay in REPLAYS.items():
        assert re.search(rf"^\| `{re.escape(name)}` \|.*\| {replay.expected_exit} \|$", table, re.M), name


def test_the_exit_code_table_lists_each_code_once():
    table = _section("Exit codes")
    assert [int(code) for code in re.findall(r"^\| ([0-9]) \|", table, re.M)] == [int(c) for c in ExitCode]


def test_the_readme_test_command_is_what_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()[-1]
    assert f"\n{ci}\n" in _section("Two commands")


def test_the_pipeline_example_is_a_valid_pipeline(tmp_path):
    [example] = re.findall(r"```yaml\n(.*?)```", _section("A pipeline"), re.S)
    (tmp_path / "p.yaml").write_text(example, encoding="utf-8")
    loaded = load_pipeline(tmp_path / "p.yaml", {"RENDER_API_KEY": "rnd_x", "DATABASE_URL": "postgresql://db/app"})
    assert [stage.type for stage in loaded.spec.stages][:2] == ["render.preflight", "db.backup"]
