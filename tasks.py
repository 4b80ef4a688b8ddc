"""invoke tasks for this repository: the product's tasks (``invoke deploy``, ...) plus the dev task ``test``."""

from __future__ import annotations

import os
import shutil
import sys
from typing import Any

from invoke import Collection, Exit, task

from deploypipe.cli.tasks import TASKS

_STATIC_CHECKS = (
    ("ruff", "-m ruff check --quiet ."),
    ("mypy", "-m mypy"),
    ("lint-imports", "-c 'from importlinter.cli import lint_imports_command as main; raise SystemExit(main())'"),
)


@task(help={"args": "Extra arguments for pytest, e.g. '-k lint -x'.",
            "static": "Run ruff, mypy and lint-imports first (default); --no-static skips them.",
            "workers": "pytest worker processes (default: one per core, up to 4; 1 runs in this process)."})
def test(c, args="", static=True, workers=None):
    """Run ruff, mypy and lint-imports (the layer contracts), then the test suite with pytest.

    Every check runs even when an earlier one failed; the task exits with the first failure's code. pytest's
    'no tests collected' (exit 5) counts as a failure. Test files run in parallel worker processes (pytest-xdist),
    one per core up to 4. The report's browser test needs Debian's chromium: when it is
    missing and this runs as root (CI), it is installed first (apt-get install -y chromium); elsewhere that test
    fails saying how to install it.
    """
    failed: list[tuple[str, int]] = []
    for name, command in _STATIC_CHECKS if static else ():
        result = c.run(f"{sys.executable} {command}", warn=True, pty=False)
        if result is None or result.exited:
            failed.append((name, result.exited if result else 1))
    _browser_for_tests(c)
    count = int(workers) if workers else max(1, min(4, os.cpu_count() or 1))
    parallel = f"-n {count} --dist loadfile " if count > 1 else ""  # a test file's tests share one worker
    result = c.run(f"{sys.executable} -m pytest {parallel}{args}", warn=True, pty=False)
    code = result.exited if result else 1
    if code == 5:
        sys.stderr.write("invoke test: pytest collected no tests\n")
    if code:
        failed.append(("pytest", code))
    if failed:
        names = ", ".join(f"{name} (exit {status})" for name, status in failed)
        sys.stderr.write(f"invoke test: failed: {names}\n")
        raise Exit(code=failed[0][1])


def _browser_for_tests(c: Any) -> None:
    if os.environ.get("DEPLOYPIPE_CHROMIUM") or shutil.which("chromium") or os.geteuid() != 0:
        return
    sys.stderr.write("invoke test: installing Debian's chromium for the report's browser test\n")
    c.run("apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium", warn=True)


ns = Collection(*TASKS, test)
