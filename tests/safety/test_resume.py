"""`deploy --resume RUN` continues a killed run from its journal: a triggered deploy is waited on, never triggered
again; and a resume that could release twice or with another pipeline is refused (exit 2, nothing run)."""

from __future__ import annotations

import signal

import pytest
from harness import (
    NEW,
    Cli,
    cli_env,
    deploy_pipeline,
    deploypipe,
    events_of,
    journal_has,
    named,
    report_of,
    run_dirs,
    write_pipeline,
)
from helpers import wait_until


@pytest.mark.e2e
def test_resume_after_a_sigkill_during_the_deploy_wait_waits_on_the_same_deploy_and_never_triggers_another(
        tmp_path, slow_render):
    render = slow_render
    write_pipeline(tmp_path, deploy_pipeline())
    env = cli_env(**render.env())
    first = Cli.start(tmp_path, "deploy", "--pipeline", "pipelines/p.yaml", env=env, tag="first")
    try:
        run_dir = wait_until(lambda: journal_has(tmp_path, "deploy_triggered"), timeout=30, what="deploy_triggered")
        first.signal(signal.SIGKILL)
        assert first.wait(10) == -signal.SIGKILL
    finally:
        first.cleanup()
    triggered = named(events_of(run_dir), "deploy_triggered")[-1]
    ours = [d for d in render.deploys() if d.trigger == "api"]
    assert [d.id for d in ours] == [triggered["deploy_id"]]
    assert ours[0].status not in ("live",), "the deploy ended before the kill; the test proves nothing"
    assert not (run_dir / "report.json").exists()

    resumed = deploypipe(tmp_path, "deploy", "--pipeline", "pipelines/p.yaml", "--resume", run_dir.name, "--json",
                         env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert [d.trigger for d in render.deploys()] == ["manual", "api"]  # one deploy on Render's side, not two
    assert render.live_commit() == NEW
    new_run = next(d for d in run_dirs(tmp_path) if d != run_dir)
    report = report_of(new_run)
    assert report["resumed_from"] == run_dir.name and report["exit_code"] == 0
    assert [d["deploy_id"] for d in report["deploys"]] == [triggered["deploy_id"]]
    events = events_of(new_run)
    assert [e["deploy_id"] for e in named(events, "deploy_resumed")] == [triggered["deploy_id"]]
    assert not named(events, "deploy_triggered")


@pytest.mark.e2e
def test_resume_after_a_sigkill_before_the_triggers_answer_takes_over_the_deploy_render_created(tmp_path, slow_render):
    render = slow_render
    render.emulator.faults.add(action="accept_then_timeout", match="POST /services/*/deploys", latency_s=30)
    write_pipeline(tmp_path, deploy_pipeline())
    env = cli_env(**render.env())
    first = Cli.start(tmp_path, "deploy", "--pipeline", "pipelines/p.yaml", env=env, tag="first")
    try:
        run_dir = wait_until(lambda: journal_has(tmp_path, "deploy_requested"), timeout=30, what="deploy_requested")
        wait_until(lambda: [d for d in render.deploys() if d.trigger == "api"], timeout=30,
                   what="the deploy Render created while its answer is held")
        first.signal(signal.SIGKILL)
        assert first.wait(10) == -signal.SIGKILL
    finally:
        first.cleanup()
    assert not named(events_of(run_dir), "deploy_triggered")  # killed before it learnt the deploy's id
    (created,) = [d for d in render.deploys() if d.trigger == "api"]

    resumed = deploypipe(tmp_path, "deploy", "--pipeline", "pipelines/p.yaml", "--resume", run_dir.name, "--json",
                         env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert [d.id for d in render.deploys() if d.trigger == "api"] == [created.id]  # found, not triggered again
    assert render.live_commit() == NEW
    events = events_of(next(d for d in run_dirs(tmp_path) if d != run_dir))
    assert [e["deploy_id"] for e in named(events, "deploy_triggered")] == [created.id]
    assert not named(events, "deploy_requested")  # the killed process's request, sent again as a lookup first


SHELL = """\
version: 1
name: resumable
stages:
  - id: change
    type: shell.run
    with: {{command: "echo changed >> {root}/changes", changes_production: true,
            compensate_command: "{compensate}"}}
  - id: second
    type: shell.run
    with: {{command: "{second}"}}
"""


def _killed_run(root, *, second: str = "kill -9 $PPID", compensate: str = "echo undone >> {root}/changes"):
    """A real run of SHELL killed with SIGKILL by one of its own commands; returns its run directory."""
    write_pipeline(root, SHELL.format(root=root, second=second, compensate=compensate.format(root=root)))
    crashed = deploypipe(root, "deploy", "--pipeline", "pipelines/p.yaml", env=cli_env())
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-2000:]
    (run_dir,) = run_dirs(root)
    assert not (run_dir / "report.json").exists()
    return run_dir


def _refused(root, run_id: str, *needles: str) -> None:
    before = run_dirs(root)
    result = deploypipe(root, "deploy", "--pipeline", "pipelines/p.yaml", "--resume", run_id, env=cli_env())
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("deploypipe: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert run_dirs(root) == before  # nothing ran: no new run record
    assert result.stdout == ""


def test_resume_of_an_unknown_run_is_refused_with_exit_2(tmp_path):
    write_pipeline(tmp_path, SHELL.format(root=tmp_path, second="true", compensate="true"))
    _refused(tmp_path, "20990101T000000Z-ffffff", "no run '20990101T000000Z-ffffff'")
    assert not (tmp_path / "changes").exists()


def test_resume_of_a_finished_run_is_refused_with_exit_2(tmp_path):
    write_pipeline(tmp_path, SHELL.format(root=tmp_path, second="true", compensate="true"))
    done = deploypipe(tmp_path, "deploy", "--pipeline", "pipelines/p.yaml", env=cli_env())
    assert done.returncode == 0, done.stderr[-2000:]
    (run_dir,) = run_dirs(tmp_path)
    _refused(tmp_path, run_dir.name, "already finished")
    assert (tmp_path / "changes").read_text() == "changed\n"


def test_resume_with_a_changed_pipeline_is_refused_with_exit_2(tmp_path):
    run_dir = _killed_run(tmp_path)
    write_pipeline(tmp_path, SHELL.format(root=tmp_path, second="echo a different second stage",
                                          compensate=f"echo undone >> {tmp_path}/changes"))
    _refused(tmp_path, run_dir.name, "different version")
    assert (tmp_path / "changes").read_text() == "changed\n"


def test_resume_of_a_run_that_was_rolling_back_is_refused_and_points_at_rollback_run(tmp_path):
    run_dir = _killed_run(tmp_path, second="exit 1", compensate="kill -9 $PPID")
    assert named(events_of(run_dir), "rollback_started")
    _refused(tmp_path, run_dir.name, "rolling back", f"rollback --run {run_dir.name}")
    assert (tmp_path / "changes").read_text() == "changed\n"  # not released a second time


def test_resume_of_a_killed_run_with_the_same_pipeline_continues_and_does_not_repeat_finished_stages(tmp_path):
    marker = tmp_path / "killed-once"
    run_dir = _killed_run(tmp_path, second=f"if [ ! -f {marker} ]; then touch {marker}; kill -9 $PPID; fi")
    resumed = deploypipe(tmp_path, "deploy", "--pipeline", "pipelines/p.yaml", "--resume", run_dir.name,
                         env=cli_env())
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert (tmp_path / "changes").read_text() == "changed\n"
