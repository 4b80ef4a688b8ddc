"""The runner: event sequence, compensations in reverse, exit codes, retries with collected waits."""

from __future__ import annotations

import pytest


def _stage(stage_id: str, command: str, *, changes: bool = False, undo: str | None = None, extra: str = "") -> str:
    undo_line = f", compensate_command: {undo!r}" if undo else ""
    return (f"  - id: {stage_id}\n    type: shell.run\n{extra}"
            f"    with: {{command: {command!r}, changes_production: {str(changes).lower()}{undo_line}}}\n")


def test_happy_run_emits_lifecycle_events_in_order_and_exits_0(project):
    project.pipeline("version: 1\nname: demo\nstages:\n" + _stage("one", "echo 1") + _stage("two", "echo 2"))
    report, _ = project.run()
    kinds = [(e["event"], e.get("stage")) for e in project.events(report) if e["event"] != "command_finished"]
    assert kinds == [
        ("run_started", None),
        ("stage_started", "one"), ("stage_succeeded", "one"),
        ("stage_started", "two"), ("stage_succeeded", "two"),
        ("run_finished", None),
    ]
    assert report.outcome == "deployed" and report.exit_code == 0
    assert [s.status for s in report.stages] == ["succeeded", "succeeded"]


@pytest.mark.parametrize("fail_at", [0, 1, 2, 3])
def test_failure_at_each_position_compensates_completed_changes_in_reverse(project, fail_at):
    marker = project.root / "undo.log"
    stages = ""
    for i in range(4):
        command = "exit 1" if i == fail_at else f"echo {i}"
        stages += _stage(f"s{i}", command, changes=i != fail_at, undo=f"echo {i} >> {marker}")
    project.pipeline("version: 1\nname: demo\nstages:\n" + stages)
    report, _ = project.run()
    undone = marker.read_text().split() if marker.exists() else []
    assert undone == [str(i) for i in reversed(range(fail_at))]
    if fail_at == 0:
        assert report.exit_code == 1 and report.outcome == "blocked"
        assert report.rollback.performed is False
    else:
        assert report.exit_code == 3 and report.outcome == "rolled_back"
        assert [item.stage for item in report.rollback.items] == [f"s{i}" for i in reversed(range(fail_at))]
    statuses = [s.status for s in report.stages]
    assert statuses == ["succeeded"] * fail_at + ["failed"] + ["not_run"] * (3 - fail_at)


def test_failing_compensation_gives_exit_4_and_is_not_swallowed(project):
    project.pipeline("version: 1\nname: demo\nstages:\n"
                     + _stage("change", "echo ok", changes=True, undo="echo cannot undo; exit 9")
                     + _stage("boom", "exit 1"))
    report, _ = project.run()
    assert report.exit_code == 4 and report.outcome == "needs_human"
    assert "ROLLBACK NOT VERIFIED" in report.message and "exited 9" in report.message
    events = [e["event"] for e in project.events(report)]
    assert "compensation_failed" in events


def test_change_without_any_compensation_needs_a_human(project):
    project.pipeline("version: 1\nname: demo\nstages:\n" + _stage("change", "echo ok", changes=True) + _stage("boom", "exit 1"))
    report, _ = project.run()
    assert report.exit_code == 4
    assert report.rollback.items[0].action == "nothing_to_undo"


def test_on_failure_stop_leaves_production_changed_and_exits_4(project):
    project.pipeline("version: 1\nname: demo\nstages:\n" + _stage("change", "echo ok", changes=True, undo="echo undo")
                     + _stage("boom", "exit 1", extra="    on_failure: stop\n"))
    report, _ = project.run()
    assert report.exit_code == 4 and report.rollback.performed is False
    assert "on_failure: stop" in report.message


def test_on_failure_continue_records_the_failure_and_goes_on(project):
    project.pipeline("version: 1\nname: demo\nstages:\n" + _stage("flaky", "exit 1", extra="    on_failure: continue\n")
                     + _stage("after", "echo after"))
    report, _ = project.run()
    assert report.exit_code == 0
    assert [s.status for s in report.stages] == ["failed", "succeeded"]


def test_transient_failures_are_retried_with_collected_waits_not_sleeps(project):
    counter = project.root / "count"
    command = f"n=$(cat {counter} 2>/dev/null || echo 0); echo $((n+1)) > {counter}; [ $n -ge 2 ] || exit 75"
    project.pipeline(f"""\
        version: 1
        name: demo
        stages:
          - id: flaky
            type: shell.run
            retry: {{attempts: 4, backoff_s: 2, max_backoff_s: 10}}
            with: {{command: {command!r}, retry_on_exit_codes: [75]}}
        """)
    report, _ = project.run()
    assert report.exit_code == 0
    assert report.stages[0].attempts == 3
    assert len(project.sleeps.waits) == 2
    assert 2 <= project.sleeps.waits[0] <= 3 and 4 <= project.sleeps.waits[1] <= 5
    assert [e["attempt"] for e in project.events(report) if e["event"] == "stage_retrying"] == [1, 2]


def test_non_transient_failure_is_not_retried(project):
    project.pipeline("version: 1\nname: demo\ndefaults: {retry: {attempts: 5}}\nstages:\n" + _stage("bad", "exit 1"))
    report, _ = project.run()
    assert report.stages[0].attempts == 1 and project.sleeps.waits == []


def test_when_expression_skips_or_runs_on_earlier_outputs(project):
    project.pipeline("version: 1\nname: demo\nstages:\n" + _stage("first", "echo hi")
                     + _stage("skipped", "exit 1", extra="    when: first.exit_code != 0\n")
                     + _stage("ran", "echo ran", extra="    when: first.exit_code == 0\n"))
    report, _ = project.run()
    assert [s.status for s in report.stages] == ["succeeded", "skipped", "succeeded"]


def test_on_failure_and_always_stages_run_after_the_rollback(project):
    log = project.root / "order.log"
    project.pipeline("version: 1\nname: demo\nstages:\n"
                     + _stage("change", f"echo change >> {log}", changes=True, undo=f"echo undo >> {log}")
                     + _stage("boom", "exit 1")
                     + _stage("notify-fail", f"echo notify-failure >> {log}", extra="    when: on_failure\n")
                     + _stage("notify-always", f"echo notify-always >> {log}", extra="    when: always\n"))
    report, _ = project.run()
    assert log.read_text().split() == ["change", "undo", "notify-failure", "notify-always"]
    assert report.exit_code == 3
