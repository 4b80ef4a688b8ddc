"""The release path runs on the plain install: no local-only package (the `local` extra, numpy, scipy) is imported."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from helpers import change_then_check

LOCAL_ONLY = ("starlette", "uvicorn", "numpy", "scipy")

# A meta-path finder that refuses the local-only packages, as if the plain `pip install deploypipe` were all there is.
BLOCKER = textwrap.dedent("""\
    import sys
    BLOCKED = set(sys.argv[1].split(","))
    class Blocker:
        @staticmethod
        def find_spec(name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r} (blocked: not in the plain install)", name=name)
            return None
    sys.meta_path.insert(0, Blocker)
""")

RELEASE_MODULES = [
    "deploypipe.commands.deploy", "deploypipe.commands.rollback", "deploypipe.commands.status",
    "deploypipe.commands.plan", "deploypipe.commands.backup", "deploypipe.commands.history",
    "deploypipe.commands.lint", "deploypipe.stages.registry", "deploypipe.engine.runner",
    "deploypipe.output.ci_summary", "deploypipe.output.html",
]

def _run_blocked(code: str, tmp_path: Path, blocked: tuple[str, ...] = LOCAL_ONLY) -> subprocess.CompletedProcess:
    script = BLOCKER + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", script, ",".join(blocked), str(tmp_path)], capture_output=True,
                          text=True, cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}, timeout=120)


def test_the_release_modules_import_nothing_local_only(tmp_path):
    result = _run_blocked(f"""
        import importlib, json
        for name in {RELEASE_MODULES!r}:
            importlib.import_module(name)
        print(json.dumps(sorted({{m.split(".")[0] for m in sys.modules}} & BLOCKED)))
    """, tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


def test_a_release_and_its_rollback_run_with_the_local_only_packages_blocked(tmp_path):
    (tmp_path / "p.yaml").write_text(change_then_check("exit 1"))
    result = _run_blocked("""
        import io
        from pathlib import Path
        from deploypipe.commands.deploy import deploy
        from deploypipe.commands.invocation import Invocation
        inv = Invocation(pipeline="p.yaml", project_dir=Path(sys.argv[2]), env={"PATH": "/usr/bin:/bin"},
                         json_output=True, stdout=io.StringIO(), stderr=io.StringIO(), interactive=False,
                         sleep=lambda s: None)
        print(deploy(inv))
    """, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "3"  # failed after production changed, rolled back, verified
    assert (tmp_path / "state.txt").read_text() == "undone\n"


def test_a_local_pipeline_on_the_plain_install_says_which_extra_it_needs(tmp_path):
    (tmp_path / "p.yaml").write_text("version: 1\nname: local\nlocal: {blueprint: render.yaml}\nstages: []\n")
    result = _run_blocked("""
        import io
        from pathlib import Path
        from deploypipe.commands.deploy import deploy
        from deploypipe.commands.invocation import Invocation
        from deploypipe.errors import UsageError
        inv = Invocation(pipeline="p.yaml", project_dir=Path(sys.argv[2]), env={"PATH": "/usr/bin:/bin"},
                         stdout=io.StringIO(), stderr=io.StringIO(), interactive=False)
        try:
            deploy(inv)
        except UsageError as exc:
            print(exc.exit_code, exc.render())
    """, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (f"2 {tmp_path / 'p.yaml'}: needs starlette, which is not installed; hint: install "
                                     "deploypipe[local] (pip install 'deploypipe[local]'): the local Render, local "
                                     "default and replays")
