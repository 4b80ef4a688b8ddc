"""Part 2 of bench/mutation.py: mutmut 3 over the safety-critical modules, with the in-process tests covering them.

mutmut runs in a temporary copy of the repository (its setup.cfg written there), so nothing in the working tree
changes. Only in-process tests count: mutmut maps each mutant to the tests that call the mutated function, which it
cannot see through a CLI subprocess. A time budget stops the run; mutants not reached are reported as not checked.

Needs ``pip install 'mutmut>=3.2,<4'`` (not a project dependency: this is a tool a person runs).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

# In-process tests that exercise the runner, compensation, the Render trigger/rollback code and health checks.
TOOL_TESTS = (
    "tests/core/test_runner.py", "tests/core/test_render_pipelines.py", "tests/core/test_health_stages.py",
    "tests/core/test_manual_undo.py", "tests/render/test_client_retries.py", "tests/render/test_client_requests.py",
    "tests/render/test_client_waiting.py", "tests/render/test_render_stages.py",
    "tests/safety/test_automatic_rollback.py", "tests/safety/test_at_most_once.py",
    "tests/safety/test_health_commit.py", "tests/safety/test_lost_release_lock.py",
    "tests/safety/test_journal_record.py", "tests/safety/test_journal_replay.py",
    "tests/safety/test_interrupts_in_process.py", "tests/safety/test_health_observation.py",
    "tests/core/test_compensation_items.py", "tests/render/test_health_base_url.py",
    "tests/render/test_rollback_failures.py",
)
# In-process tests that fail on current code because of a product bug they report (a clean run must pass).
KNOWN_FAILING: tuple[str, ...] = ()

KILLED = {1, 3, 37}
SURVIVED = {0}
NO_TESTS = {5, 33}
TIMEOUT = {36, -24, 24, 152, 255}


def _config(modules: list[str], tests: tuple[str, ...], covered_only: bool) -> str:
    def listing(items: list[str] | tuple[str, ...]) -> str:
        return "\n".join(f"    {item}" for item in items)

    deselect = "".join(f"    --deselect\n    {node}\n" for node in KNOWN_FAILING)
    return ("[mutmut]\nsource_paths=deploypipe\n"
            f"only_mutate=\n{listing(modules)}\n"
            f"pytest_add_cli_args_test_selection=\n{listing(tests)}\n"
            f"pytest_add_cli_args=\n    -p\n    no:cacheprovider\n    -q\n{deselect}"
            f"mutate_only_covered_lines={'true' if covered_only else 'false'}\n"
            # log lines say what happened to a person; they are not a safety promise (the journal is: mutated)
            "do_not_mutate_patterns=\n    ^\\s*\\(?(ctx\\.)?log\\.(debug|info|warning|error|exception)\\b\n"
            "use_git_change_detection=false\ntrack_dependencies=false\n")


def _results(copy: Path, modules: list[str]) -> dict[str, int | None]:
    """mutant name -> exit code (None: not checked), from mutmut's .meta files."""
    found: dict[str, int | None] = {}
    for module in modules:
        meta = copy / "mutants" / f"{module}.meta"
        if meta.exists():
            found.update(json.loads(meta.read_text()).get("exit_code_by_key", {}))
    return found


def _show(copy: Path, env: dict[str, str], name: str) -> str:
    shown = subprocess.run([sys.executable, "-m", "mutmut", "show", name], cwd=copy, env=env, capture_output=True,
                           text=True, timeout=60)
    diff = [line for line in shown.stdout.splitlines() if line.startswith(("+", "-")) and
            not line.startswith(("+++", "---"))]
    return " | ".join(line.strip() for line in diff)[:220]


def run_tool(root: Path, modules: list[str], *, budget_s: float, tests: tuple[str, ...] = TOOL_TESTS,
             covered_only: bool = False, max_children: int = 2, keep: bool = False) -> int:
    from mutation import copy_repo  # bench/mutation.py

    try:
        import mutmut  # noqa: F401
    except ImportError:
        raise SystemExit("mutmut is not installed: pip install 'mutmut>=3.2,<4'") from None
    tmp = Path(tempfile.mkdtemp(prefix="deploypipe-mutmut-"))
    copy = copy_repo(tmp / "repo")
    (copy / "setup.cfg").write_text(_config(modules, tests, covered_only), encoding="utf-8")
    temproot = tmp / "pytest-temp"
    temproot.mkdir()
    # pytest's own temp root inside ours, so its pruning never touches other pytest sessions on this machine
    env = {**os.environ, "PYTEST_DEBUG_TEMPROOT": str(temproot), "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTHONPATH", None)
    started = time.monotonic()
    log = tmp / "mutmut.log"
    print(f"mutmut over {', '.join(modules)}\n  tests: {' '.join(tests)}\n  budget {budget_s:.0f}s; log {log}",
          flush=True)
    with open(log, "w") as out:
        proc = subprocess.Popen(["mutmut", "run", "--max-children", str(max_children)], cwd=copy, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            proc.wait(budget_s)
            stopped = False
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            stopped = True
    took = time.monotonic() - started
    results = _results(copy, modules)
    counts: Counter[str] = Counter()
    for code in results.values():
        counts["not checked" if code is None else "killed" if code in KILLED else "survived" if code in SURVIVED
               else "no tests" if code in NO_TESTS else "timeout" if code in TIMEOUT else "other"] += 1
    checked = sum(v for k, v in counts.items() if k != "not checked")
    killed = counts["killed"] + counts["timeout"]  # a mutant that makes the tests hang is caught by them
    print(f"mutmut: {len(results)} mutants, {checked} checked in {took:.0f}s"
          f"{' (time budget reached)' if stopped else ''}; " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    if checked:
        print(f"killed/checked: {killed}/{checked} = {100 * killed / checked:.1f} %  "
              f"(survivors and 'no tests' count as not killed)")
    def module_of(name: str) -> str:  # deploypipe.engine.runner.xǁRunnerǁundo__mutmut_3 -> deploypipe.engine.runner
        return re.split(r"\.x[_\u01c1]", name, maxsplit=1)[0]

    by_module = Counter(module_of(name) for name, code in results.items() if code is not None)
    killed_by_module = Counter(module_of(name) for name, code in results.items()
                               if code in KILLED or code in TIMEOUT)
    for module in sorted(by_module):
        print(f"  {module}: {killed_by_module[module]}/{by_module[module]}")
    survivors = sorted(name for name, code in results.items() if code in SURVIVED or code in NO_TESTS)
    if survivors:
        print(f"surviving mutants ({len(survivors)}; `cd {copy} && mutmut show NAME` shows one):")
        for name in survivors:
            print(f"  {name}: {_show(copy, env, name)}")
    if not keep:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if checked and killed / checked >= 0.8 else 1
