"""When a rollback does not go live, the error is exit 4 and says, word for word, what happened, what is live now and
what a person should do; a rollback that does go live turns auto-deploy off only when asked, and says how to turn
it back on (the in-process local Render on a fake clock)."""

from __future__ import annotations

import pytest

from deploypipe.errors import ExitCode, RollbackFailed
from deploypipe.stages.rollbacks import roll_back

SRV = "srv-web0000000000000000"


def _roll_back(stages, to: str, *, prior: tuple = (), timeout_s: float = 300.0, disable_auto_deploy: bool = False):
    return roll_back(stages.context("render.rollback", stage_id="undo", prior=prior), "web", SRV, to,
                     timeout_s=timeout_s, poll_s=2.0, disable_auto_deploy=disable_auto_deploy)


def test_a_rollback_render_refuses_names_the_target_what_is_live_and_the_way_out(stages):
    live = stages.render.deploy_live(commit="1" * 40)
    with pytest.raises(RollbackFailed) as caught:
        _roll_back(stages, "dep-doesnotexist000000")
    error = caught.value
    assert error.message.startswith("Render did not roll web back to dep-doesnotexist000000: ")
    assert error.message.endswith(f"; live now: {live} at commit 111111111111")
    assert error.hint == ("pick another deploy (invoke rollback shows them), or redeploy a good commit "
                          "(invoke deploy)")
    assert (error.where, error.pending, error.exit_code) == ("stage undo", False, ExitCode.NEEDS_HUMAN)


def test_a_rollback_that_ends_failed_names_its_deploy_and_the_expired_build(stages):
    render = stages.render
    first = render.deploy_live(commit="1" * 40)
    second = render.deploy_live(commit="2" * 40)
    render.emulator.runtime.failures["1" * 40] = "update"  # the old build no longer starts
    with pytest.raises(RollbackFailed) as caught:
        _roll_back(stages, first)
    error = caught.value
    [rollback] = [d for d in render.service().deploys if d.trigger == "rollback"]
    assert error.message == (f"rollback {rollback.id} of web to {first} ended update_failed: the new instance exited "
                             f"with status 1; live now: {second} at commit 222222222222")
    assert error.hint == "the build of the target may have expired; pick another deploy (invoke rollback)"
    assert (error.deploy_id, error.where, error.pending) == (rollback.id, "stage undo", False)


def test_a_resumed_rollback_that_does_not_finish_in_time_is_pending_and_names_its_deploy(stages):
    render = stages.render
    first = render.deploy_live(commit="1" * 40)
    second = render.deploy_live(commit="2" * 40)
    pending = render.client.rollback(SRV, first)  # triggered by an earlier process of this run, still updating
    prior = ({"event": "rollback_triggered", "service": "web", "deploy_id": pending.id, "to_deploy": first},)
    with pytest.raises(RollbackFailed) as caught:
        _roll_back(stages, first, prior=prior, timeout_s=6.0)
    error = caught.value
    assert error.message.startswith(f"rollback {pending.id} of web to {first} did not finish (")
    assert error.message.endswith(f"); live now: {second} at commit 222222222222")
    assert error.hint == "look at the service in the Render dashboard and roll back by hand"
    assert (error.pending, error.deploy_id, error.where) == (True, pending.id, "stage undo")
    assert stages.named("rollback_resumed") == [{"event": "rollback_resumed", "stage": "undo", "service": "web",
                                                 "deploy_id": pending.id, "to_deploy": first}]
    assert stages.named("rollback_triggered") == []  # waited on, never triggered a second time


def test_auto_deploy_is_turned_off_only_when_asked_and_the_note_says_how_to_turn_it_on(stages):
    render = stages.render
    first = render.deploy_live(commit="1" * 40)
    render.deploy_live(commit="2" * 40)
    final, note = _roll_back(stages, first)
    assert (final.status, note) == ("live", "") and render.client.get_service(SRV).auto_deploy
    render.deploy_live(commit="3" * 40)
    final, note = _roll_back(stages, first, disable_auto_deploy=True)
    assert final.commit_id == "1" * 40 and not render.client.get_service(SRV).auto_deploy
    assert note == ("auto-deploy turned off for web so the next push does not redeploy the bad commit; turn it back "
                    f"on (Render dashboard > Settings > Auto-Deploy, or PATCH /services/{SRV} autoDeploy=yes) when "
                    "the fix is deployed")
    assert [e["service_id"] for e in stages.named("auto_deploy_disabled")] == [SRV]
