"""The runner's side of SIGINT and SIGTERM, in this process (test_signals.py does the same to the real CLI): the
journal's `interrupted` event says which signal, during what, what was left undone and how to finish the job."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from harness import events_of, named, run_in_process, write_pipeline

from deploypipe.engine.signals import interruptible


@pytest.fixture
def sigterm_like_the_cli():
    """SIGINT and SIGTERM raise Interrupted(signum), as the CLI's error boundary arranges; yields that handler."""
    with interruptible():
        yield signal.getsignal(signal.SIGINT)


@pytest.fixture
def pids(tmp_path):
    path = tmp_path / "pids"
    yield path
    if path.exists():  # the interrupted command is our child, left running (see test_signals.py): stop and reap it
        for line in path.read_text().split():
            try:
                os.killpg(int(line), signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                os.waitpid(int(line), 0)
            except ChildProcessError:
                pass


def _pipeline(root: Path, *stages: str) -> None:
    write_pipeline(root, "version: 1\nname: cancelled\nstages:\n" + "".join(stages))


def _stage(stage_id: str, command: str, extra: str = "") -> str:
    return f"  - id: {stage_id}\n    type: shell.run\n    with: {{command: \"{command}\"{extra}}}\n"


CHANGE = ", changes_production: true, compensate_command: 'echo undone >> {root}/prod'"


def _interrupted(report) -> list[dict]:
    return [{k: v for k, v in e.items() if k not in ("seq", "ts", "run_id")}
            for e in named(events_of(report.run_dir), "interrupted")]


def test_sigint_during_a_stage_before_production_changed_is_journalled_with_nothing_left_undone(
        tmp_path, clock, pids):
    _pipeline(tmp_path, _stage("checks", f"echo $$ >> {pids}; kill -INT $PPID; sleep 5"),
              _stage("change", f"echo changed >> {tmp_path}/prod", CHANGE.format(root=tmp_path)))
    report, _ = run_in_process(tmp_path, None, clock)
    assert report.exit_code == 1 and report.outcome == "blocked"
    assert report.message.endswith(" (interrupted)")
    assert _interrupted(report) == [{"event": "interrupted", "signal": "SIGINT", "during": "checks",
                                     "left_undone": [], "hint": ""}]
    assert report.stage("checks").status == "errored" and report.stage("change").status == "not_run"
    assert not (tmp_path / "prod").exists()


def test_sigterm_during_a_stage_after_production_changed_is_journalled_with_what_is_left_undone_and_rolled_back(
        tmp_path, clock, pids, sigterm_like_the_cli):
    _pipeline(tmp_path, _stage("change", f"echo changed >> {tmp_path}/prod", CHANGE.format(root=tmp_path)),
              _stage("smoke", f"echo $$ >> {pids}; kill -TERM $PPID; sleep 5"))
    report, _ = run_in_process(tmp_path, None, clock)
    assert report.exit_code == 3 and report.outcome == "rolled_back", report.message
    assert _interrupted(report) == [{"event": "interrupted", "signal": "SIGTERM", "during": "smoke",
                                     "left_undone": ["change"],
                                     "hint": f"invoke rollback --run {report.run_id}"}]
    assert (tmp_path / "prod").read_text() == "changed\nundone\n"
    assert report.message.endswith(" (interrupted)")


def test_signals_during_the_rollback_are_journalled_and_do_not_stop_it(tmp_path, clock, sigterm_like_the_cli):
    compensate = (", changes_production: true, compensate_command: "
                  f"'kill -INT $PPID; kill -TERM $PPID; echo undone >> {tmp_path}/prod'")
    _pipeline(tmp_path, _stage("change", f"echo changed >> {tmp_path}/prod", compensate), _stage("smoke", "exit 1"))
    report, _ = run_in_process(tmp_path, None, clock)
    assert report.exit_code == 3 and report.outcome == "rolled_back", report.message
    assert (tmp_path / "prod").read_text() == "changed\nundone\n"
    hint = f"invoke rollback --run {report.run_id}"
    # both journalled; the order the two pending signals reach Python's handlers is the kernel's, not ours
    assert sorted(_interrupted(report), key=lambda event: event["signal"]) == [
        {"event": "interrupted", "signal": "SIGINT", "during": "rollback", "left_undone": ["change"], "hint": hint},
        {"event": "interrupted", "signal": "SIGTERM", "during": "rollback", "left_undone": ["change"], "hint": hint}]
    assert signal.getsignal(signal.SIGINT) is sigterm_like_the_cli  # the handlers are given back afterwards
