"""A release lock whose connection is lost during a run (its backend terminated from another connection while a
stage runs) ends the run safely: exit 1 when production was not changed yet; when it was, a rollback only once the
lock is taken back, else exit 4 with a message saying why nothing was rolled back."""

from __future__ import annotations

import threading

import psycopg
import pytest
from harness import GOOD, NEW, deploy_pipeline, events_of, named, run_in_process, write_pipeline
from helpers import wait_until

from deploypipe.db.advisory import Holder, PgAdvisoryLock

WAIT = """\
  - id: wait
    type: shell.run
    with: {{command: "touch {root}/waiting; while [ ! -f {root}/go ]; do sleep 0.05; done"}}
"""


def _lock_backend(url: str) -> int | None:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("select a.pid from pg_stat_activity a join pg_locks l on l.pid = a.pid "
                           "where l.locktype = 'advisory' and l.granted and a.application_name like 'deploypipe %' "
                           "and a.datname = current_database()").fetchone()
    return row[0] if row else None


def _run_and_cut_the_lock(tmp_path, render, clock, url: str, pipeline: str, *, take_it: bool = False):
    """Run ``pipeline`` in a thread; while its `wait` stage runs, terminate the release lock's backend (and, with
    ``take_it``, take the lock for another run); return the report and the other holder (released at the end)."""
    write_pipeline(tmp_path, pipeline)
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(
        report=run_in_process(tmp_path, render, clock, env={"DATABASE_URL": url})[0]))
    thread.start()
    other = None
    try:
        wait_until(lambda: (tmp_path / "waiting").exists(), timeout=30, what="the wait stage")
        pid = wait_until(lambda: _lock_backend(url), timeout=10, what="the release lock's backend")
        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.execute("select pg_terminate_backend(%s)", (pid,)).fetchone()[0]
        if take_it:
            other = PgAdvisoryLock(url, "deploypipe-release:release", what="release lock",
                                   holder=Holder(run_id="20261130T000000Z-0the12", user="dev", host="laptop"))
            wait_until(lambda: _lock_backend(url) is None, timeout=10, what="the lock to be free")
            other.acquire()
            assert _lock_backend(url) is not None
    finally:
        (tmp_path / "go").touch()
        thread.join(60)
        if other is not None:
            other.release()
    assert not thread.is_alive()
    return result["report"]


@pytest.mark.e2e
def test_a_lost_release_lock_before_production_changed_stops_the_run_with_exit_1(tmp_path, render, clock, new_db):
    url = new_db("lostlock")
    text = deploy_pipeline(database=True)
    pipeline = text.replace("stages:\n", "stages:\n" + WAIT.format(root=tmp_path), 1)
    report = _run_and_cut_the_lock(tmp_path, render, clock, url, pipeline)
    assert report.exit_code == 1 and report.outcome == "blocked", report.message
    assert "release lock was lost" in report.message
    assert report.stage("deploy").status == "errored"
    assert [d.trigger for d in render.deploys()] == ["manual"]  # the deploy never ran
    assert render.live_commit() == GOOD
    (errored,) = named(events_of(report.run_dir), "stage_errored")
    assert {k: v for k, v in errored.items() if k not in ("seq", "ts", "run_id")} == {
        "event": "stage_errored", "stage": "deploy", "attempts": 0, "duration_s": 0.0, "changed_production": False,
        "outputs": {},
        "error": {"type": "StageErrored", "where": "release lock", "message": errored["error"]["message"]}}
    message = errored["error"]["message"]
    assert message.startswith("release lock: the release lock was lost (the connection holding the release lock "
                              "broke (") and "); stopped before this stage; hint: another run may now hold" in message
    assert not named(events_of(report.run_dir), "stage_started")[1:]  # only the wait stage started


@pytest.mark.e2e
def test_a_lost_release_lock_after_production_changed_is_taken_back_and_the_release_rolled_back_with_exit_3(
        tmp_path, render, clock, new_db):
    url = new_db("lostlock")
    pipeline = deploy_pipeline(database=True, verify=False, after=WAIT.format(root=tmp_path)
                               + "  - id: after\n    type: shell.run\n    with: {command: 'true'}\n")
    report = _run_and_cut_the_lock(tmp_path, render, clock, url, pipeline)
    assert report.exit_code == 3 and report.outcome == "rolled_back", report.message
    assert "release lock was lost" in report.message
    assert report.stage("after").status == "errored"
    assert render.live_commit() == GOOD
    assert named(events_of(report.run_dir), "rollback_started")


@pytest.mark.e2e
def test_a_lost_release_lock_taken_by_another_run_is_not_rolled_back_and_exits_4_saying_why(
        tmp_path, render, clock, new_db):
    url = new_db("lostlock")
    pipeline = deploy_pipeline(database=True, verify=False, after=WAIT.format(root=tmp_path)
                               + "  - id: after\n    type: shell.run\n    with: {command: 'true'}\n")
    report = _run_and_cut_the_lock(tmp_path, render, clock, url, pipeline, take_it=True)
    assert report.exit_code == 4 and report.outcome == "needs_human", report.message
    assert "NOT rolled back" in report.message and "20261130T000000Z-0the12" in report.message
    assert f"rollback --run {report.run_id}" in report.message
    assert render.live_commit() == NEW  # nothing was touched while another run may be releasing
    assert not named(events_of(report.run_dir), "rollback_started")
