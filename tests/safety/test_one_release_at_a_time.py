"""One release at a time, between real processes: on one machine (the file lock) and across machines (the advisory
release lock on the pipeline's database). A second run exits 1 naming the first, or waits with --wait-lock."""

from __future__ import annotations

import getpass
import socket
from datetime import datetime
from pathlib import Path

import pytest
from harness import (
    NEW,
    OTHER,
    Cli,
    cli_env,
    deploy_pipeline,
    events_of,
    named,
    report_of,
    run_dirs,
    write_pipeline,
)
from helpers import wait_until

HOLDING = """\
version: 1
name: held
stages:
  - id: hold
    type: shell.run
    with: {{command: "touch {root}/holding; while [ ! -f {root}/release ]; do sleep 0.05; done"}}
"""


def _ts(event: dict) -> datetime:
    return datetime.fromisoformat(event["ts"])


def _holder_named(text: str, run_id: str) -> None:
    assert run_id in text, text
    assert getpass.getuser() in text and socket.gethostname().split(".")[0] in text, text
    assert "since" in text, text


def test_a_second_process_on_the_same_lock_exits_1_naming_the_first_by_run_id_user_host_and_since(tmp_path):
    write_pipeline(tmp_path, HOLDING.format(root=tmp_path))
    first = Cli.start(tmp_path, "deploy", "--pipeline", "pipelines/p.yaml", env=cli_env(), tag="first")
    try:
        wait_until(lambda: (tmp_path / "holding").exists(), what="the first run to hold the lock")
        (first_run,) = run_dirs(tmp_path)
        second = Cli.start(tmp_path, "deploy", "--pipeline", "pipelines/p.yaml", "--json", env=cli_env(),
                           tag="second")
        try:
            assert second.wait(30) == 1, second.stderr[-2000:]
        finally:
            second.cleanup()
        blocked = next(d for d in run_dirs(tmp_path) if d != first_run)
        report = report_of(blocked)
        assert report["outcome"] == "blocked" and report["exit_code"] == 1
        assert "another deploy holds the lock 'held'" in report["message"]
        _holder_named(report["message"], first_run.name)
        assert f"pid {first.proc.pid}" in report["message"]
        assert all(s["status"] == "not_run" for s in report["stages"])
        assert '"exit_code": 1' in second.stdout
        (tmp_path / "release").touch()
        assert first.wait(60) == 0, first.stderr[-2000:]
    finally:
        first.cleanup()


def test_a_second_process_with_wait_lock_waits_for_the_first_and_then_finishes_0(tmp_path):
    write_pipeline(tmp_path, HOLDING.format(root=tmp_path))
    first = Cli.start(tmp_path, "deploy", "--pipeline", "pipelines/p.yaml", env=cli_env(), tag="first")
    second = None
    try:
        wait_until(lambda: (tmp_path / "holding").exists(), what="the first run to hold the lock")
        (first_run,) = run_dirs(tmp_path)
        second = Cli.start(tmp_path, "deploy", "--pipeline", "pipelines/p.yaml", "--wait-lock", "60",
                           env=cli_env(), tag="second")
        wait_until(lambda: "lock_waiting" in second.stderr, what="the second run to wait for the lock")
        assert second.proc.poll() is None  # still waiting, not failed
        (tmp_path / "release").touch()
        assert first.wait(60) == 0, first.stderr[-2000:]
        assert second.wait(60) == 0, second.stderr[-2000:]
        second_run = next(d for d in run_dirs(tmp_path) if d != first_run)
        finished = named(events_of(first_run), "run_finished")[0]
        started = named(events_of(second_run), "stage_started")[0]
        assert _ts(started) >= _ts(finished)  # its stages ran after the first run had finished
        assert first_run.name in second.stderr  # the waiting line named the holder
    finally:
        first.cleanup()
        if second is not None:
            second.cleanup()


# -- two machines: two working directories, one service, one database ----------------------------------------
def _machine(root: Path, commit: str) -> Path:
    root.mkdir()
    write_pipeline(root, deploy_pipeline(commit=commit, database=True))
    return root


def _releases(dirs: list[Path]) -> list[tuple[datetime, datetime, str]]:
    """Each run that triggered a deploy: (deploy triggered, run finished, run id)."""
    spans = []
    for root in dirs:
        for run_dir in run_dirs(root):
            events = events_of(run_dir)
            triggered = named(events, "deploy_triggered")
            if triggered:
                spans.append((_ts(triggered[0]), _ts(named(events, "run_finished")[-1]), run_dir.name))
    return sorted(spans)


@pytest.mark.e2e
def test_two_working_directories_released_at_once_never_overlap_and_the_second_refuses_naming_the_first(
        tmp_path, slow_render, new_db):
    render, url = slow_render, new_db("twomachines")
    ci, laptop = _machine(tmp_path / "ci", NEW), _machine(tmp_path / "laptop", OTHER)
    env = cli_env(DATABASE_URL=url, **render.env())
    procs = [Cli.start(root, "deploy", "--pipeline", "pipelines/p.yaml", env=env, tag="run") for root in (ci, laptop)]
    try:
        codes = [p.wait(90) for p in procs]
    finally:
        for p in procs:
            p.cleanup()
    assert sorted(codes) == [0, 1], [p.stderr[-1500:] for p in procs]
    winner, loser = (ci, laptop) if codes[0] == 0 else (laptop, ci)
    (winner_run,) = run_dirs(winner)
    (loser_run,) = run_dirs(loser)
    refused = report_of(loser_run)
    assert refused["outcome"] == "blocked" and "release lock" in refused["message"], refused["message"]
    _holder_named(refused["message"], winner_run.name)
    assert [d.trigger for d in render.deploys()] == ["manual", "api"]  # only the winner deployed
    assert render.live_commit() == (NEW if winner is ci else OTHER)


@pytest.mark.e2e
def test_two_working_directories_with_wait_lock_release_one_after_the_other_and_both_finish_0(
        tmp_path, slow_render, new_db):
    """The laptop starts while the CI run holds the lock and runs its checks (its deploy not triggered yet): the
    laptop queues behind it, and releases once the CI run has finished. The checks last until the laptop is seen
    waiting for the lock (they wait for a file the test creates then), whatever the machine's speed."""
    render, url = slow_render, new_db("twomachines")
    go = tmp_path / "go"
    checks = f"  - id: checks\n    type: shell.run\n    with: {{command: 'while [ ! -e {go} ]; do sleep 0.05; done'}}\n"
    ci, laptop = tmp_path / "ci", tmp_path / "laptop"
    for root, commit in ((ci, NEW), (laptop, OTHER)):
        root.mkdir()
        text = deploy_pipeline(commit=commit, database=True)
        write_pipeline(root, text.replace("stages:\n", "stages:\n" + checks, 1))
    env = cli_env(DATABASE_URL=url, **render.env())
    procs = [Cli.start(ci, "deploy", "--pipeline", "pipelines/p.yaml", "--wait-lock", "60", env=env, tag="run")]
    try:
        wait_until(lambda: run_dirs(ci) and named(events_of(run_dirs(ci)[0]), "stage_started"), timeout=30,
                   what="the CI run to hold the lock")
        procs.append(Cli.start(laptop, "deploy", "--pipeline", "pipelines/p.yaml", "--wait-lock", "60", env=env,
                               tag="run"))
        wait_until(lambda: "lock_waiting" in procs[1].stderr, timeout=30, what="the laptop run to wait for the lock")
        assert not named(events_of(run_dirs(ci)[0]), "deploy_triggered"), "too late: the test proves nothing"
        go.touch()
        codes = [p.wait(90) for p in procs]
    finally:
        for p in procs:
            p.cleanup()
    spans = _releases([ci, laptop])
    for (_, first_end, first_id), (second_start, _, second_id) in zip(spans, spans[1:], strict=False):
        assert second_start >= first_end, f"{second_id} deployed while {first_id} was still releasing"
    assert codes == [0, 0], [(p.proc.returncode, report_of(run_dirs(r)[0])["message"]) for p, r in
                             zip(procs, (ci, laptop), strict=True)]
    assert [d.trigger for d in render.deploys()] == ["manual", "api", "api"]
    assert render.live_commit() == OTHER
