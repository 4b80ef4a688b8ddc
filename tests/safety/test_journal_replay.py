"""What `deploy --resume` and `rollback --run` do with a journal cut short where a kill would cut it (in this process;
test_resume.py and test_signals.py kill the real CLI): nothing done twice, nothing left undone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from harness import GOOD, NEW, deploy_pipeline, events_of, invocation, named, run_in_process, write_pipeline

from deploypipe.commands.rollback import rollback
from deploypipe.errors import UsageError


def _cut_after(run_dir: str, event: str, stage: str | None = None) -> str:
    """Drop every journal line after the last ``event`` (of ``stage``) and the report, as a SIGKILL there would;
    returns the run id."""
    path = Path(run_dir) / "events.jsonl"
    lines = path.read_text().splitlines()
    last = max(i for i, line in enumerate(lines) if json.loads(line)["event"] == event
               and (stage is None or json.loads(line).get("stage") == stage))
    path.write_text("\n".join(lines[:last + 1]) + "\n")
    (Path(run_dir) / "report.json").unlink()
    return Path(run_dir).name


def _undo(tmp_path, render, clock, run_id: str):
    inv = invocation(tmp_path, {"PATH": "/usr/bin:/bin"}, render=render, sleep=clock, clock=clock.time)
    return rollback(inv, service=None, to=None, run=run_id, yes=True)


def test_rollback_run_of_a_run_killed_during_its_rollback_waits_on_that_rollback_and_verifies_it(
        tmp_path, render, clock):
    render.health.unhealthy = {NEW}
    write_pipeline(tmp_path, deploy_pipeline())
    first, _ = run_in_process(tmp_path, render, clock)
    (triggered,) = named(events_of(first.run_dir), "rollback_triggered")
    killed = _cut_after(first.run_dir, "rollback_triggered")
    report = _undo(tmp_path, render, clock, killed)
    assert report.exit_code == 0 and report.outcome == "rollback_verified", report.message
    assert report.message == f"undid deploy from run {killed}"
    assert [d.id for d in render.deploys() if d.trigger == "rollback"] == [triggered["deploy_id"]]
    events = events_of(report.run_dir)
    assert [(e["deploy_id"], e["to_deploy"]) for e in named(events, "rollback_resumed")] == [
        (triggered["deploy_id"], triggered["to_deploy"])]
    assert not named(events, "rollback_triggered")
    started = named(events, "run_started")[0]
    assert (started["kind"], started["undoing"]) == ("rollback", killed)
    assert [(e["stage"], e["verified"]) for e in named(events, "rollback_verified")] == [("verify", True)]
    assert {s.id: s.status for s in report.stages} == {"deploy": "from_run", "verify": "not_run"}
    assert render.live_commit() == GOOD


def test_rollback_run_of_a_run_killed_after_its_deploy_was_triggered_rolls_it_back(tmp_path, render, clock):
    write_pipeline(tmp_path, deploy_pipeline())
    first, _ = run_in_process(tmp_path, render, clock)
    assert render.live_commit() == NEW
    killed = _cut_after(first.run_dir, "deploy_triggered")
    report = _undo(tmp_path, render, clock, killed)
    assert report.exit_code == 0 and report.message == f"undid deploy from run {killed}"
    assert report.stage("deploy").status == "interrupted"
    assert render.live_commit() == GOOD


@pytest.mark.parametrize("cut", ["stage_started", "compensation_succeeded"])
def test_rollback_run_of_a_run_with_nothing_left_to_undo_changes_nothing(tmp_path, render, clock, cut):
    render.health.unhealthy = {NEW}
    write_pipeline(tmp_path, deploy_pipeline())
    first, _ = run_in_process(tmp_path, render, clock)
    deploys = len(render.deploys())
    path = Path(first.run_dir) / "events.jsonl"
    if cut == "stage_started":  # killed before the deploy was triggered
        lines = path.read_text().splitlines()
        path.write_text("\n".join(lines[:2]) + "\n")
        (Path(first.run_dir) / "report.json").unlink()
        killed = Path(first.run_dir).name
    else:
        killed = _cut_after(first.run_dir, cut)
    report = _undo(tmp_path, render, clock, killed)
    assert report.exit_code == 0 and report.outcome == "rollback_verified"
    assert report.message == (f"run {killed} left nothing to undo (no stage changed production, or it was undone "
                              "already)")
    assert len(render.deploys()) == deploys and not named(events_of(report.run_dir), "rollback_started")


def test_resume_after_the_deploy_succeeded_takes_its_outputs_and_deploys_from_the_journal(tmp_path, render, clock):
    write_pipeline(tmp_path, deploy_pipeline())
    first, _ = run_in_process(tmp_path, render, clock)
    (done,) = [e for e in events_of(first.run_dir) if e["event"] == "stage_succeeded" and e["stage"] == "deploy"]
    killed = _cut_after(first.run_dir, "stage_succeeded", "deploy")
    report, _ = run_in_process(tmp_path, render, clock, resume=killed)
    assert report.exit_code == 0 and report.resumed_from == killed, report.message
    assert [d.trigger for d in render.deploys()] == ["manual", "api"]
    deploy = report.stage("deploy")
    assert (deploy.status, deploy.summary, deploy.outputs) == ("succeeded", "done in an earlier attempt of this run",
                                                               done["outputs"])
    assert [d.model_dump(mode="json") for d in report.deploys] == done["deploys"]
    assert report.message == f"deployed and verified: api at {NEW[:12]}"
    assert [e["stage"] for e in named(events_of(report.run_dir), "stage_resumed")] == ["deploy"]
    assert report.stage("verify").status == "succeeded"


def test_resume_whose_journalled_outputs_do_not_fit_the_stage_is_refused_with_rollback_run_as_the_way_out(
        tmp_path, render, clock):
    write_pipeline(tmp_path, deploy_pipeline())
    first, _ = run_in_process(tmp_path, render, clock)
    killed = _cut_after(first.run_dir, "stage_succeeded", "deploy")
    path = Path(first.run_dir) / "events.jsonl"
    events = [json.loads(line) for line in path.read_text().splitlines()]
    events[-1]["outputs"] = {"service": "api"}  # service_id missing: not a render.deploy output
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    with pytest.raises(UsageError) as caught:
        run_in_process(tmp_path, render, clock, resume=killed)
    text = caught.value.render()
    assert f"run {killed}: the journalled outputs of stage deploy do not fit render.deploy" in text
    assert f"rollback --run {killed}" in text and "cannot be resumed" in text
