"""wait_for_deploy and failure reasons on the local Render's simulated 60-second deploys (fake clock, no waiting)."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from deploypipe.emulator.app import apply_fault
from deploypipe.render import DeployStatus, DeployTimeout

SRV = "srv-web0000000000000000"
SHA = "c0ffee" + "0" * 34


def test_a_60_second_deploy_is_polled_at_most_once_per_2_seconds_and_each_transition_logged_once(render):
    deploy = render.client.trigger_deploy(SRV, commit_id=SHA)
    start, before = render.clock.now, render.counter.count("GET")
    seen: list[str] = []
    with capture_logs() as logs:
        final = render.client.wait_for_deploy(SRV, deploy.id, timeout_s=900, on_status=lambda d: seen.append(d.status))
    polls = render.counter.count("GET") - before
    elapsed = render.clock.now - start
    assert final.status == "live" and elapsed >= 60
    assert polls <= elapsed / 2
    assert seen == ["build_in_progress", "pre_deploy_in_progress", "update_in_progress", "live"]
    transitions = [(e["from"], e["to"]) for e in logs if e["event"] == "deploy_status"]
    assert transitions == [(None, "build_in_progress"), ("build_in_progress", "pre_deploy_in_progress"),
                           ("pre_deploy_in_progress", "update_in_progress"), ("update_in_progress", "live")]
    assert max(render.clock.waits) <= 15.0


@pytest.mark.parametrize("phase, status, reason", [
    ("build", "build_failed", "the build failed"),
    ("pre_deploy", "pre_deploy_failed", "the pre-deploy command failed"),
    ("update", "update_failed", "the new instance exited with status 1"),
])
def test_a_deploy_failing_in_each_phase_ends_in_its_status_with_renders_reason(render, phase, status, reason):
    live = render.deploy_live(commit="1" * 40)
    apply_fault(render.emulator, {"action": "fail_deploy", "service": "web", "phase": phase})
    deploy = render.client.trigger_deploy(SRV, commit_id=SHA)
    final = render.client.wait_for_deploy(SRV, deploy.id, timeout_s=900)
    assert final.status == status and final.status in DeployStatus.FAILURE
    assert render.client.deploy_failure_reason(SRV, deploy.id) == reason
    assert render.client.live_deploy(SRV).id == live  # the old release keeps serving


def test_a_canceled_deploy_ends_canceled_and_says_so(render):
    deploy = render.client.trigger_deploy(SRV, commit_id=SHA)
    render.client.cancel_deploy(SRV, deploy.id)
    final = render.client.wait_for_deploy(SRV, deploy.id, timeout_s=60)
    assert final.status == "canceled"
    assert render.client.deploy_failure_reason(SRV, deploy.id) == "the deploy was canceled"


def test_a_wait_that_times_out_cancels_the_deploy_and_raises(render):
    deploy = render.client.trigger_deploy(SRV, commit_id=SHA)
    start = render.clock.now
    with pytest.raises(DeployTimeout) as info:
        render.client.wait_for_deploy(SRV, deploy.id, timeout_s=25, cancel_on_timeout=True)
    assert render.clock.now - start == pytest.approx(25)
    error = info.value
    assert str(error).startswith(
        f"service {SRV}: deploy {deploy.id} still pre_deploy_in_progress after 25s; cancelled it")
    assert error.cancelled is True and error.status == "pre_deploy_in_progress"
    assert render.client.get_deploy(SRV, deploy.id).status == "canceled"


def test_a_wait_that_times_out_without_cancelling_leaves_the_deploy_running(render):
    deploy = render.client.trigger_deploy(SRV, commit_id=SHA)
    with pytest.raises(DeployTimeout, match="still build_in_progress after 5s; hint"):
        render.client.wait_for_deploy(SRV, deploy.id, timeout_s=5)
    assert render.client.get_deploy(SRV, deploy.id).status == "build_in_progress"
