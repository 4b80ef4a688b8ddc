"""Mutation check of deploypipe's safety promises (a script a person runs; not part of CI).

Part 1 applies a list of semantic mutants -- each a precise one-spot source change that breaks a promise -- to a
temporary copy of the repository, runs the tests that guard that promise there, and prints killed/total. Every
listed mutant must be killed. ``--breaks`` adds the one-line breaks used to watch each test in tests/safety go red.

Part 2 (``--tool``) runs a maintained mutation tool (mutmut 3) over the safety-critical modules with the in-process
tests that cover them, within a time budget, and prints killed/total, the percentage, and the surviving mutants.

    python bench/mutation.py                       # the listed mutants (a few minutes)
    python bench/mutation.py --breaks              # ... plus each safety test's own one-line break
    python bench/mutation.py --only resume-without-journal
    python bench/mutation.py --tool --budget-s 3600 [--modules deploypipe/engine/compensation.py ...]
    python bench/mutation.py --list

Tests in the copy import the copy's code (PYTHONPATH), including the CLI processes the tests start.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAFETY = "tests/safety"


@dataclass(frozen=True)
class Mutant:
    id: str
    what: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


# -- part 1: the listed semantic mutants -----------------------------------------------------------------------
LISTED = [
    Mutant("rollback-reverify-skipped", "the health re-verification after an automatic rollback is skipped",
           "deploypipe/engine/compensation.py",
           "    if restored:\n        items.extend(_reverify(",
           "    if False:  # MUTANT\n        items.extend(_reverify(",
           (f"{SAFETY}/test_automatic_rollback.py",)),
    Mutant("resend-after-5xx-without-lookup", "a deploy/rollback POST answered 5xx (or dropped) is sent again "
           "without looking for the deploy it may have created",
           "deploypipe/render/once.py",
           "            if not_sent(exc):\n                raise\n",
           "            if True:  # MUTANT\n                raise\n",
           (f"{SAFETY}/test_at_most_once.py",)),
    Mutant("resume-without-journal", "deploy --resume passes no journalled events to the runner",
           "deploypipe/commands/run.py",
           "runner.run(resume_events=previous_events, resumed_from=resume)",
           "runner.run(resume_events=None, resumed_from=resume)",
           (f"{SAFETY}/test_resume.py",)),
    Mutant("run-lock-not-taken", "the run's release lock (file lock and advisory lock) is never taken",
           "deploypipe/commands/run.py",
           "            lock.acquire(wait)\n",
           "            pass  # MUTANT: lock.acquire(wait)\n",
           (f"{SAFETY}/test_one_release_at_a_time.py",)),
    Mutant("journal-not-redacted", "journal events are written without passing through the redactor",
           "deploypipe/engine/journal.py",
           "record = self.redactor(json.loads(json.dumps(record, default=_default)))",
           "record = json.loads(json.dumps(record, default=_default))  # MUTANT",
           (f"{SAFETY}/test_redaction.py",)),
    Mutant("exit-4-reported-as-3", "a failed or unverified rollback (needs_human) is reported with exit code 3",
           "deploypipe/stages/report.py",
           "Outcome.NEEDS_HUMAN: ExitCode.NEEDS_HUMAN",
           "Outcome.NEEDS_HUMAN: ExitCode.ROLLED_BACK",
           (f"{SAFETY}/test_automatic_rollback.py", f"{SAFETY}/test_process_exit_codes.py")),
]

# Each safety test's own one-line break: the change under which it was seen to fail.
BREAKS: list[Mutant] = []


# -- copying and running ---------------------------------------------------------------------------------------
def copy_repo(dest: Path) -> Path:
    """The repository's tracked and untracked (not ignored) files, copied to ``dest``."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                            capture_output=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return dest


def apply(copy: Path, mutant: Mutant) -> None:
    path = copy / mutant.path
    text = path.read_text(encoding="utf-8")
    found = text.count(mutant.old)
    if found != 1:
        raise SystemExit(f"mutant {mutant.id}: expected the spot once in {mutant.path}, found it {found} times "
                         "(the code moved: update bench/mutation.py)")
    path.write_text(text.replace(mutant.old, mutant.new), encoding="utf-8")


def run_tests(copy: Path, tests: tuple[str, ...], *, extra: tuple[str, ...] = (), timeout_s: float = 900) -> int:
    basetemp = tempfile.mkdtemp(prefix="pt-mut-")
    env = {**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1"}
    try:
        result = subprocess.run([sys.executable, "-m", "pytest", *tests, "-x", "-q", "-p", "no:cacheprovider",
                                 f"--basetemp={basetemp}", *extra], cwd=copy, env=env, capture_output=True,
                                text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return -1
    finally:
        shutil.rmtree(basetemp, ignore_errors=True)
    return result.returncode


def check(mutants: list[Mutant], *, baseline: bool) -> tuple[int, int]:
    killed = 0
    with tempfile.TemporaryDirectory(prefix="deploypipe-mutation-") as tmp:
        pristine = copy_repo(Path(tmp) / "pristine")
        if baseline:
            tests = tuple(sorted({t for m in mutants for t in m.tests}))
            started = time.monotonic()
            code = run_tests(pristine, tests)
            print(f"baseline (no mutant): {'green' if code == 0 else f'RED (pytest exit {code})'} "
                  f"in {time.monotonic() - started:.0f}s", flush=True)
            if code != 0:
                raise SystemExit("the tests fail without any mutant; fix that first")
        for mutant in mutants:
            copy = Path(tmp) / mutant.id
            shutil.copytree(pristine, copy)
            apply(copy, mutant)
            started = time.monotonic()
            code = run_tests(copy, mutant.tests)
            verdict = "killed" if code == 1 else ("SURVIVED" if code == 0 else f"error (pytest exit {code})")
            killed += code == 1
            print(f"  {verdict:<8} {mutant.id:<38} {time.monotonic() - started:5.0f}s  {mutant.what}", flush=True)
            shutil.rmtree(copy, ignore_errors=True)
    return killed, len(mutants)


# -- part 2: a mutation tool -----------------------------------------------------------------------------------
TOOL_MODULES = ("deploypipe/engine/runner.py", "deploypipe/engine/compensation.py", "deploypipe/render/once.py",
                "deploypipe/stages/rollbacks.py", "deploypipe/stages/http.py")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--only", action="append", default=[], metavar="ID", help="run only these mutants")
    parser.add_argument("--breaks", action="store_true", help="also run each safety test's one-line break")
    parser.add_argument("--no-baseline", action="store_true", help="skip the run without mutants")
    parser.add_argument("--tool", action="store_true", help="run the mutation tool (part 2) instead")
    parser.add_argument("--modules", nargs="*", default=list(TOOL_MODULES), help="modules the tool mutates")
    parser.add_argument("--budget-s", type=float, default=3600.0, help="time budget of the tool run")
    args = parser.parse_args(argv)
    if args.tool:
        from mutation_tool import run_tool  # bench/mutation_tool.py

        return run_tool(ROOT, args.modules, budget_s=args.budget_s)
    mutants = LISTED + (BREAKS if args.breaks or args.only else [])
    if args.only:
        mutants = [m for m in mutants if m.id in args.only]
        if not mutants:
            raise SystemExit(f"no mutant named {', '.join(args.only)} (see --list)")
    if args.list:
        for m in mutants:
            print(f"{m.id:<40} {m.path}: {m.what}\n{'':<40} tests: {' '.join(m.tests)}")
        return 0
    started = time.monotonic()
    killed, total = check(mutants, baseline=not args.no_baseline)
    print(f"listed mutants killed: {killed}/{total} in {time.monotonic() - started:.0f}s")
    return 0 if killed == total else 1


if __name__ == "__main__":
    sys.exit(main())
