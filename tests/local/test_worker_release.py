"""The local default releases the web service and its worker as one wave; a worker that crashes after going live
is caught from Render's data and the whole release is rolled back and verified (exit 3); status calls a
crash-looping worker failing."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from deploypipe.commands.invocation import load
from deploypipe.commands.run import run_pipeline
from deploypipe.commands.status import Thresholds, show_status
from deploypipe.local.repo import LocalRepo
from deploypipe.render.client import RenderClient
from deploypipe.replays.changes import BAD_CHANGES
from deploypipe.replays.engine import run_replay

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def released(local):
    project, inv = local
    report = run_pipeline(inv)
    assert report.exit_code == 0, report.message
    return inv, report


def _live(inv, name: str) -> str | None:
    with RenderClient.from_env(dict(inv.env)) as client:
        live = client.live_deploy(client.find_service(name).id)
    return live.commit_id if live else None


def test_both_services_are_released_in_one_wave_and_verified_by_kind(released):
    inv, report = released
    stage = next(s for s in report.stages if s.id == "deploy")
    assert stage.type == "render.release" and stage.status == "succeeded"
    assert stage.outputs["waves"] == [["web", "worker"]]
    assert stage.outputs["kinds"] == {"web": "web", "worker": "worker"}
    assert "no instance failure or error line" in stage.outputs["verified"]["worker"]
    assert {d.service for d in report.deploys} >= {"web", "worker"}
    head = LocalRepo(Path(inv.env["DEPLOYPIPE_LOCAL_REPO"])).head()
    assert _live(inv, "sampleapp-worker") == head == _live(inv, "sampleapp")


def test_worker_crash_replay_rolls_back_both_services_and_verifies_each(released):
    inv, _ = released
    before = {name: _live(inv, name) for name in ("sampleapp", "sampleapp-worker")}
    result = run_replay("worker-crash", env=dict(inv.env), load=lambda: load(inv),
                        run=lambda loaded: run_pipeline(inv, loaded=loaded))
    first = result.runs[0]
    assert result.exit_code == 3, result.summary()
    failed = first.failed_stages()[0]
    assert failed.type == "render.release"
    assert "worker: " in failed.error.message and "NameError: name 'send_digest' is not defined" \
        in failed.error.message, failed.error.message
    assert first.rollback.verified is True
    summary = " ".join(i.summary for i in first.rollback.items)
    for key in ("web", "worker"):
        assert f"{key}: back to " in summary and "verified" in summary, summary
    assert {name: _live(inv, name) for name in before} == before
    assert result.unharmed, result.summary()


def test_status_exits_1_on_a_crash_looping_worker_with_its_error_line(released):
    inv, _ = released
    repo = LocalRepo(Path(inv.env["DEPLOYPIPE_LOCAL_REPO"]))
    good = repo.head()
    path = repo.path / "examples/sampleapp/worker.py"
    bad = repo.commit_change({"examples/sampleapp/worker.py": BAD_CHANGES["worker-crash"]["transform"][
        "examples/sampleapp/worker.py"](path.read_text())}, "crashing worker")
    with RenderClient.from_env(dict(inv.env)) as client:
        worker = client.find_service("sampleapp-worker")
        try:
            deploy = client.trigger_deploy(worker.id, commit_id=bad)
            assert client.wait_for_deploy(worker.id, deploy.id, timeout_s=120, poll_s=0.5).status == "live"
            deadline = time.monotonic() + 60
            while not client.list_events(worker.id, types=["server_failed"], start_time=deploy.created_at):
                assert time.monotonic() < deadline, "the worker never crashed"
                time.sleep(0.5)
            inv.stdout.seek(0)
            inv.stdout.truncate()
            code = show_status(inv, Thresholds())
        finally:
            repo.reset_to(good)
            back = client.trigger_deploy(worker.id, commit_id=good)
            client.wait_for_deploy(worker.id, back.id, timeout_s=120, poll_s=0.5)
    text = inv.stdout.getvalue()
    assert code == 1, text
    assert "worker: FAILING" in text and "NameError: name 'send_digest' is not defined" in text, text
