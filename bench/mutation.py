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

# Each safety test's own one-line break: the change under which it was seen to fail (``--breaks``).
S = SAFETY
BREAKS: list[Mutant] = [
    Mutant("resume-unknown-run-accepted", "an unknown run id is not refused as unknown", "deploypipe/engine/journal.py",
           'or run_id.startswith(".") or not path.is_dir():', 'or run_id.startswith("."):  # MUTANT',
           (f"{S}/test_resume.py::test_resume_of_an_unknown_run_is_refused_with_exit_2",)),
    Mutant("resume-changed-pipeline-accepted", "a resume with a changed pipeline is not refused",
           "deploypipe/commands/run.py", 'if started.get("digest") != pipeline_digest(loaded):',
           'if False and started.get("digest") != pipeline_digest(loaded):  # MUTANT',
           (f"{S}/test_resume.py::test_resume_with_a_changed_pipeline_is_refused_with_exit_2",)),
    Mutant("resume-finished-run-accepted", "a resume of a finished run is not refused", "deploypipe/commands/run.py",
           'if any(e.get("event") == "run_finished" for e in events):',
           'if False and any(e.get("event") == "run_finished" for e in events):  # MUTANT',
           (f"{S}/test_resume.py::test_resume_of_a_finished_run_is_refused_with_exit_2",)),
    Mutant("resume-rolling-back-accepted", "a resume of a run that was rolling back is not refused",
           "deploypipe/commands/run.py", 'if any(e.get("event") == "rollback_started" for e in events):',
           'if False and any(e.get("event") == "rollback_started" for e in events):  # MUTANT',
           (f"{S}/test_resume.py::test_resume_of_a_run_that_was_rolling_back_is_refused_and_points_at_rollback_run",)),
    Mutant("no-advisory-release-lock", "no advisory lock on the database: only this machine's file lock",
           "deploypipe/commands/run.py", "url = databases[next(iter(databases))].url if databases else None",
           "url = None  # MUTANT",
           (f"{S}/test_one_release_at_a_time.py::"
            "test_two_working_directories_released_at_once_never_overlap_and_the_second_refuses_naming_the_first",
            f"{S}/test_manual_rollback.py::test_a_manual_rollback_while_another_run_holds_the_release_lock_exits_1_naming_it")),
    Mutant("exit-1-reported-as-0", "blocked is reported with exit code 0", "deploypipe/stages/report.py",
           "Outcome.BLOCKED: ExitCode.BLOCKED", "Outcome.BLOCKED: ExitCode.DEPLOYED",
           (f"{S}/test_process_exit_codes.py",)),
    Mutant("exit-3-reported-as-4", "rolled back and verified is reported with exit code 4",
           "deploypipe/stages/report.py", "Outcome.ROLLED_BACK: ExitCode.ROLLED_BACK",
           "Outcome.ROLLED_BACK: ExitCode.NEEDS_HUMAN", (f"{S}/test_process_exit_codes.py",)),
    Mutant("rollback-to-ignored", "rollback --to DEPLOY goes to the default previous deploy instead",
           "deploypipe/commands/rollback.py", '"with": {"service": key, **({"to": to} if to else {})}}',
           '"with": {"service": key}}  # MUTANT', (f"{S}/test_manual_rollback.py",)),
    Mutant("rollback-answer-ignored", "the answer at the terminal is ignored", "deploypipe/commands/rollback.py",
           "if not inv.confirm(question() if callable(question) else question):",
           "if False and not inv.confirm(question() if callable(question) else question):  # MUTANT",
           (f"{S}/test_manual_rollback.py::test_on_a_terminal_answering_n_changes_nothing_and_exits_2",)),
    Mutant("rollback-without-terminal-asks", "without a terminal, rollback asks instead of refusing",
           "deploypipe/commands/rollback.py", "    if not inv.is_interactive():",
           "    if False:  # MUTANT", (f"{S}/test_manual_rollback.py::"
                                     "test_a_rollback_without_a_terminal_and_without_yes_is_refused_with_exit_2",)),
    Mutant("manual-rollback-other-lock", "a manual rollback takes another lock than the pipeline's",
           "deploypipe/commands/rollback.py", '{"version": 1, "name": loaded.spec.name,',
           '{"version": 1, "name": loaded.spec.name + "-rollback",  # MUTANT\n',
           (f"{S}/test_manual_rollback.py::test_a_manual_rollback_while_another_run_holds_the_release_lock_exits_1_naming_it",)),
    Mutant("lost-lock-not-checked", "the runner does not ask whether the release lock still holds",
           "deploypipe/engine/runner.py", "lost = self.guard.lost()", "lost = None  # MUTANT",
           (f"{S}/test_lost_release_lock.py",)),
    Mutant("lost-lock-not-regained", "a rollback goes ahead without taking the lost release lock back",
           "deploypipe/engine/runner.py", "held = self.guard.regain()", "held = None  # MUTANT",
           (f"{S}/test_lost_release_lock.py::"
            "test_a_lost_release_lock_taken_by_another_run_is_not_rolled_back_and_exits_4_saying_why",)),
    Mutant("alias-expansion-unbounded", "alias expansion is not bounded", "deploypipe/core/yamlio.py",
           "if self.nodes > MAX_NODES:", "if self.nodes > MAX_NODES * 10**9:  # MUTANT",
           (f"{S}/test_hostile_yaml.py::test_plan_on_an_alias_bomb_exits_2_with_one_line_in_under_a_second_past_startup",)),
    Mutant("merge-keys-not-applied", "merge keys (<<) are not applied", "deploypipe/core/yamlio.py",
           "            self.constructor.flatten_mapping(node)", "            pass  # MUTANT",
           (f"{S}/test_hostile_yaml.py::test_yaml_with_anchors_aliases_and_non_overlapping_merges_loads_exactly_as_pyyaml_does",)),
    Mutant("short-equal-commit-rejected", "equal commit ids shorter than 7 characters do not match",
           "deploypipe/core/commits.py", "    if a == b:\n        return True\n", "",
           (f"{S}/test_health_commit.py",)),
    Mutant("short-prefix-commit-accepted", "an abbreviation shorter than 7 characters matches",
           "deploypipe/core/commits.py", "return len(shorter) >= MIN_ABBREVIATION and longer.startswith(shorter)",
           "return longer.startswith(shorter)  # MUTANT", (f"{S}/test_health_commit.py",)),
    Mutant("dry-run-deploys", "deploy --dry-run runs the pipeline", "deploypipe/cli/actions.py", "    if dry_run:",
           "    if False:  # MUTANT", (f"{S}/test_plan_calls_nothing.py",)),
    Mutant("backup-verification-ignored", "a dump whose restore into staging failed goes on as if it had not",
           "deploypipe/db/verified.py", "        if follower.code != 0:\n", "        if False:  # MUTANT\n",
           (f"{S}/test_backup_verification.py",)),
    Mutant("rollback-not-shielded", "signals interrupt a rollback under way", "deploypipe/engine/runner.py",
           'with shielded(lambda signum: self._interrupted(signum, "rollback")):', "if True:  # MUTANT",
           (f"{S}/test_signals.py::test_signals_during_a_short_rollback_are_journalled_and_the_rollback_finishes_with_exit_3",)),
    Mutant("interrupt-not-journalled", "an interrupted stage is not journalled as interrupted",
           "deploypipe/engine/runner.py",
           "            if isinstance(exc, KeyboardInterrupt):\n"
           "                self._interrupted(signum_of(exc), stage.id)",
           "            if False:  # MUTANT\n                self._interrupted(signum_of(exc), stage.id)",
           (f"{S}/test_signals.py::test_a_signal_during_a_stage_after_production_changed_rolls_back_and_exits_3",)),
    Mutant("sigterm-not-handled", "SIGTERM kills the process instead of stopping the stage and rolling back",
           "deploypipe/engine/signals.py",
           "    previous = {number: signal.signal(number, interrupt) for number in _SIGNALS}",
           "    previous = {number: signal.signal(number, interrupt) for number in (signal.SIGINT,)}  # MUTANT",
           (f"{S}/test_signals.py::test_a_signal_during_a_stage_after_production_changed_rolls_back_and_exits_3",)),
    Mutant("report-not-redacted", "report.json is written without passing through the redactor",
           "deploypipe/engine/journal.py", "masked = Report.model_validate(self.redactor(report.to_json()))",
           "masked = report  # MUTANT", (f"{S}/test_redaction.py",)),
    Mutant("big-table-missing-from-copy-passes", "a table missing from the staging copy counts as equal",
           "deploypipe/db/copy_check.py", "for t, n in counts.items() if staged.get(t) != n}",
           "for t, n in counts.items() if t in staged and staged.get(t) != n}  # MUTANT",
           ("tests/db/test_verified.py::test_a_table_over_the_hash_limit_missing_from_the_copy_fails_on_its_count",)),
    Mutant("rollback-reverify-ignores-commit", "the re-verification after a rollback accepts any reported commit",
           "deploypipe/stages/http.py",
           "        commit = restored[params.service].commit\n        spec = self._probe(ctx, params, commit)",
           "        commit = restored[params.service].commit\n        spec = self._probe(ctx, params, None)  # MUTANT",
           (f"{S}/test_automatic_rollback.py::"
            "test_a_restored_release_reporting_another_commit_fails_the_re_verification_with_exit_4",)),
    Mutant("squawk-missing-silent", "a missing squawk binary passes silently", "deploypipe/db/lint.py",
           'return [squawk_missing("migration " + migration)]', "return []  # MUTANT",
           ("tests/db/test_squawk_missing.py",)),
    Mutant("secret-name-only-at-start", "a secret-looking variable name is recognised only at the start of the name",
           "deploypipe/core/redact.py", "SECRET_NAME_PATTERN.search(name):",
           "SECRET_NAME_PATTERN.match(name):  # MUTANT",
           (f"{S}/test_redaction.py::test_an_undeclared_variable_with_a_secret_looking_name_is_masked_in_every_output",)),
    Mutant("min-errors-off-by-one", "a scope with exactly min_errors failed requests can no longer fail",
           "deploypipe/analysis/judge.py", "if counts.errors >= config.min_errors and",
           "if counts.errors > config.min_errors and",
           ("tests/analysis/test_verdicts.py::test_a_scope_needs_min_errors_failed_requests_and_fails_with_exactly_"
            "that_many",)),
]


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


def run_tests(copy: Path, tests: tuple[str, ...], *, extra: tuple[str, ...] = (), stop_first: bool = True,
              timeout_s: float = 900) -> tuple[int, str]:
    """pytest in ``copy`` (its code imported, CLI subprocesses included); (exit status, output)."""
    basetemp = tempfile.mkdtemp(prefix="pt-mut-")
    env = {**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1"}
    try:
        result = subprocess.run([sys.executable, "-m", "pytest", *tests, *(["-x"] if stop_first else []), "-q",
                                 "-rf", "-p", "no:cacheprovider", f"--basetemp={basetemp}", *extra], cwd=copy,
                                env=env, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return -1, "timeout"
    finally:
        shutil.rmtree(basetemp, ignore_errors=True)
    return result.returncode, result.stdout


def check(mutants: list[Mutant], *, baseline: bool) -> tuple[int, int]:
    """Run each mutant's tests on a mutated copy. Tests that already fail without any mutant (a product bug they
    report) are left out of the mutant runs, and listed."""
    killed = 0
    deselect: list[str] = []
    with tempfile.TemporaryDirectory(prefix="deploypipe-mutation-") as tmp:
        pristine = copy_repo(Path(tmp) / "pristine")
        if baseline:
            tests = tuple(sorted({t for m in mutants for t in m.tests}))
            started = time.monotonic()
            code, output = run_tests(pristine, tests, stop_first=False)
            deselect = [line.split()[1] for line in output.splitlines() if line.startswith("FAILED ")]
            print(f"baseline (no mutant): pytest exit {code} in {time.monotonic() - started:.0f}s; "
                  f"{len(deselect)} test(s) already fail and are left out:", flush=True)
            for node in deselect:
                print(f"    {node}")
            if code not in (0, 1) or (code == 1 and not deselect):
                raise SystemExit("the tests do not run cleanly without any mutant; fix that first")
        extra = tuple(arg for node in deselect for arg in ("--deselect", node))
        for mutant in mutants:
            copy = Path(tmp) / mutant.id
            shutil.copytree(pristine, copy)
            apply(copy, mutant)
            started = time.monotonic()
            code, _ = run_tests(copy, mutant.tests, extra=extra)
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
    parser.add_argument("--only-breaks", action="store_true", help="run only the one-line breaks")
    parser.add_argument("--no-baseline", action="store_true", help="skip the run without mutants")
    parser.add_argument("--tool", action="store_true", help="run the mutation tool (part 2) instead")
    parser.add_argument("--modules", nargs="*", default=list(TOOL_MODULES), help="modules the tool mutates")
    parser.add_argument("--budget-s", type=float, default=3600.0, help="time budget of the tool run")
    parser.add_argument("--tests", nargs="*", help="tests the tool runs (default: bench/mutation_tool.TOOL_TESTS)")
    parser.add_argument("--covered-only", action="store_true", help="tool: mutate only lines the tests cover")
    parser.add_argument("--keep", action="store_true", help="tool: keep the temporary copy (to `mutmut show`)")
    args = parser.parse_args(argv)
    if args.tool:
        from mutation_tool import TOOL_TESTS, run_tool  # bench/mutation_tool.py

        return run_tool(ROOT, args.modules, budget_s=args.budget_s, tests=tuple(args.tests or TOOL_TESTS),
                        covered_only=args.covered_only, keep=args.keep)
    mutants = ([] if args.only_breaks else LISTED) + (BREAKS if args.breaks or args.only or args.only_breaks else [])
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
    print(f"mutants killed: {killed}/{total} in {time.monotonic() - started:.0f}s")
    return 0 if killed == total else 1


if __name__ == "__main__":
    sys.exit(main())
