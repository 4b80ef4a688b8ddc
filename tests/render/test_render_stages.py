"""render.preflight / render.deploy / render.rollback on the in-process local Render, with contexts built by hand."""

from __future__ import annotations

import pytest

from deploypipe.emulator.app import apply_fault
from deploypipe.errors import RollbackFailed, StageErrored, StageFailed, TransientError
from deploypipe.render.history import rollback_candidates
from deploypipe.stages.render import RenderDeploy, RenderRollback
from deploypipe.stages.render_preflight import RenderPreflight

SRV = "srv-web0000000000000000"


def _preflight(stages, **params):
    return RenderPreflight().run(stages.context("render.preflight"), RenderPreflight.Params(**params))


def _deploy(stages, prior=(), **params):
    params.setdefault("service", "web")
    return RenderDeploy().run(stages.context("render.deploy", prior=prior), RenderDeploy.Params(**params))


def test_preflight_records_each_live_deploy_as_the_rollback_target(stages, git_repo):
    live = stages.render.deploy_live(commit=git_repo.git("rev-parse", "HEAD"))
    result = _preflight(stages)
    web = result.outputs.services["web"]
    assert web.model_dump() == {"service_id": SRV, "live_deploy_id": live, "live_commit": git_repo.git("rev-parse", "HEAD"),
                   "auto_deploy": True, "url": "https://web.example.test", "branch": "main",
                   "commit": git_repo.git("rev-parse", "HEAD"), "recent_failures": 0}
    assert result.outputs.services["worker"].live_deploy_id is None
    assert result.warnings == ("worker: no deploy is live yet; a failed deploy cannot be rolled back",)
    assert result.changed_production is False and RenderPreflight.touches_production is False


def test_preflight_warns_that_production_is_frozen_after_three_failed_deploys(stages):
    render = stages.render
    live = render.deploy_live(commit="1" * 40)
    failed = []
    for phase in ("build", "update", "update"):
        apply_fault(render.emulator, {"action": "fail_deploy", "service": "web", "phase": phase})
        failed.append(render.emulator.trigger(render.service(), commit_id="2" * 40)[0])
        render.clock.now += 120
        render.emulator.service(SRV)
    result = _preflight(stages, services=["web"])
    finished = render.service().deploys[0].to_json()["finishedAt"]
    listed = ", ".join(f"{d.id} ({d.status})" for d in reversed(failed))
    assert result.warnings == (f"web: production frozen on commit 111111111111 since {finished}; "
                               f"the last 3 deploys failed: {listed}",)
    assert "update_failed" in listed and "build_failed" in listed
    assert result.outputs.services["web"].live_deploy_id == live


def test_preflight_refuses_while_a_deploy_is_in_progress(stages):
    busy, _ = stages.render.emulator.trigger(stages.render.service(), commit_id="1" * 40)
    with pytest.raises(StageFailed, match=f"web: deploy {busy.id} \\(commit 111111111111\\) is build_in_progress; "
                                          "refusing to start another"):
        _preflight(stages, services=["web"])


def test_preflight_waits_for_a_deploy_in_progress_when_asked(stages):
    busy, _ = stages.render.emulator.trigger(stages.render.service(), commit_id="1" * 40)
    result = _preflight(stages, services=["web"], wait_in_progress_s=300)
    assert result.outputs.services["web"].live_deploy_id == busy.id
    assert sum(stages.render.clock.waits) >= 60


def test_preflight_refuses_a_commit_that_is_not_on_the_branch_render_builds(stages, git_repo):
    git_repo.git("checkout", "-q", "-b", "feature")
    side = git_repo.commit("app.py", "print('side')\n", "side")
    with pytest.raises(StageFailed, match=f"web: commit {side[:12]} is not on main, the branch Render builds"):
        _preflight(stages, services=["web"], commit=side)


def test_preflight_refuses_a_commit_missing_from_the_repo(stages):
    with pytest.raises(StageFailed, match="web: commit deadbeef does not exist in"):
        _preflight(stages, services=["web"], commit="deadbeef")


def test_preflight_warns_when_the_branch_render_builds_is_unknown_locally(stages, git_repo):
    git_repo.git("branch", "-m", "main", "trunk")
    result = _preflight(stages, services=["web"])
    assert any("branch main (which Render builds) is not known" in w for w in result.warnings)


def test_deploy_triggers_head_journals_it_before_waiting_and_reports_the_previous_release(stages, git_repo):
    old = stages.render.deploy_live(commit="1" * 40)
    stages.outputs["pre"] = _preflight(stages, services=["web"]).outputs
    head = git_repo.commit("app.py", "print('v2')\n", "v2")
    result = _deploy(stages)
    deploy_id = result.outputs.deploy_id
    on_render = stages.render.client.get_deploy(SRV, deploy_id)
    assert result.outputs.model_dump() == {
        "service": "web", "service_id": SRV, "deploy_id": deploy_id, "commit": head, "previous_deploy_id": old,
        "previous_commit": "1" * 40, "url": "https://web.example.test", "status": "live",
        "created_at": on_render.created_at, "live_at": on_render.finished_at}
    assert result.changed_production is True
    assert [d.model_dump() for d in result.deploys] == [{"service": "web", "deploy_id": deploy_id, "commit": head,
                                                          "status": "live"}]
    names = [e["event"] for e in stages.events]
    assert names.index("deploy_triggered") < names.index("deploy_status")
    assert stages.named("deploy_triggered")[0]["deploy_id"] == deploy_id
    assert [e["status"] for e in stages.named("deploy_status")][-1] == "live"


def test_deploy_refuses_a_dirty_working_tree_unless_allowed(stages, git_repo):
    (git_repo.path / "app.py").write_text("print('edited')\n")
    with pytest.raises(StageFailed, match="has uncommitted changes \\(app.py\\); Render would build HEAD without them"):
        _deploy(stages)
    assert stages.render.service().deploys == []
    assert _deploy(stages, allow_dirty=True).outputs.status == "live"


@pytest.mark.parametrize("phase, status, reason", [
    ("build", "build_failed", "the build failed"),
    ("pre_deploy", "pre_deploy_failed", "the pre-deploy command failed"),
    ("update", "update_failed", "the new instance exited with status 1"),
])
def test_a_deploy_failing_on_render_fails_the_stage_without_changing_production(stages, phase, status, reason):
    stages.render.deploy_live(commit="1" * 40)
    apply_fault(stages.render.emulator, {"action": "fail_deploy", "service": "web", "phase": phase})
    with pytest.raises(StageFailed) as info:
        _deploy(stages, commit="2" * 40)
    error = info.value
    assert f"ended {status}: {reason}" in str(error) and "; commit 111111111111 keeps serving" in str(error)
    assert error.production_changed is False and error.outputs.status == status
    assert error.outputs.previous_commit == "1" * 40
    [diagnostic] = stages.diagnostics  # Render's own logs of the failed deploy, for the report
    assert (diagnostic.kind, diagnostic.deploy_id) == ("app" if phase == "update" else "build", error.outputs.deploy_id)
    assert diagnostic.lines


def test_a_deploy_canceled_on_render_fails_the_stage_without_changing_production(stages):
    stages.render.deploy_live(commit="1" * 40)
    client = stages.render.client
    original = client.wait_for_deploy

    def cancel_then_wait(service_id, deploy_id, **kwargs):  # someone presses Cancel in the dashboard
        client.cancel_deploy(service_id, deploy_id)
        return original(service_id, deploy_id, **kwargs)

    client.wait_for_deploy = cancel_then_wait
    with pytest.raises(StageFailed, match="ended canceled: the deploy was canceled") as info:
        _deploy(stages, commit="2" * 40)
    assert info.value.production_changed is False


def test_a_deploy_that_times_out_is_cancelled_and_fails_the_stage(stages):
    stages.render.deploy_live(commit="1" * 40)
    with pytest.raises(StageFailed, match="still build_in_progress after 10s; cancelled it; 111111111111 keeps serving") as info:
        _deploy(stages, commit="2" * 40, timeout_s=10)
    assert info.value.production_changed is False and info.value.outputs.status == "timeout"
    assert stages.render.service().deploys[-1].status == "canceled"


def test_a_resumed_deploy_waits_on_the_journalled_deploy_instead_of_triggering_again(stages):
    first = stages.render.client.trigger_deploy(SRV, commit_id="2" * 40)
    prior = ({"event": "deploy_triggered", "service": "web", "service_id": SRV, "deploy_id": first.id,
              "commit": "2" * 40, "previous_deploy_id": None, "previous_commit": None, "url": None},)
    before = stages.render.counter.count("POST")
    result = _deploy(stages, prior=prior, commit="2" * 40)
    assert result.outputs.deploy_id == first.id and result.outputs.status == "live"
    assert stages.render.counter.count("POST") == before and len(stages.render.service().deploys) == 1
    assert stages.named("deploy_resumed") and not stages.named("deploy_triggered")


def test_losing_render_while_waiting_is_not_retryable_so_the_runner_never_triggers_twice(stages):
    stages.render.deploy_live(commit="1" * 40)
    stages.render.emulator.faults.add(action="status", match="GET /services/*/deploys/*", status=503, times=100)
    with pytest.raises(StageErrored, match="lost contact with Render while waiting for deploy") as info:
        _deploy(stages, commit="2" * 40)
    assert not isinstance(info.value, TransientError)
    assert info.value.production_changed is True


def test_compensation_rolls_back_to_the_previous_deploy_and_turns_auto_deploy_off(stages):
    render = stages.render
    old = render.deploy_live(commit="1" * 40)
    outputs = _deploy(stages, commit="2" * 40).outputs
    comp = RenderDeploy().compensate(stages.context("render.deploy"), RenderDeploy.Params(service="web"), outputs)
    live = render.client.live_deploy(SRV)
    assert (comp.action, comp.verified) == ("rolled_back", True)
    assert live.commit_id == "1" * 40 and live.trigger == "rollback"
    assert comp.details["service"] == "web" and comp.details["from_deploy"] == outputs.deploy_id
    assert comp.details["to_deploy"] == old and comp.details["rollback_deploy_id"] == live.id
    assert comp.details["commit"] == "1" * 40
    assert "auto-deploy turned off for web" in comp.summary and "when the fix is deployed" in comp.summary
    assert render.client.get_service(SRV).auto_deploy is False
    assert stages.named("rollback_triggered")[0]["to_deploy"] == old and stages.named("auto_deploy_disabled")


def test_a_compensation_whose_rollback_fails_says_what_is_live_now(stages):
    render = stages.render
    render.deploy_live(commit="1" * 40)
    outputs = _deploy(stages, commit="2" * 40).outputs
    render.emulator.runtime.failures["1" * 40] = "update"  # the old build no longer starts
    with pytest.raises(RollbackFailed) as info:
        RenderDeploy().compensate(stages.context("render.deploy"), RenderDeploy.Params(service="web"), outputs)
    message = str(info.value)
    assert "ended update_failed: the new instance exited with status 1" in message
    assert f"live now: {outputs.deploy_id} at commit 222222222222" in message


def test_rollback_defaults_to_the_previous_successful_deploy_and_then_further_back(stages):
    render = stages.render
    first = render.deploy_live(commit="1" * 40)
    second = render.deploy_live(commit="2" * 40)
    render.deploy_live(commit="3" * 40)
    apply_fault(render.emulator, {"action": "fail_deploy", "service": "web", "phase": "build"})
    render.emulator.trigger(render.service(), commit_id="4" * 40)
    render.clock.now += 60
    params = RenderRollback.Params(service="web", disable_auto_deploy=False)
    result = RenderRollback().run(stages.context("render.rollback"), params)
    assert (result.outputs.to_deploy, result.outputs.commit) == (second, "2" * 40)
    assert result.outputs.previous_commit == "3" * 40 and result.changed_production
    candidates = rollback_candidates(render.client, SRV)
    assert [(c["status"], c["commit"][:1]) for c in candidates] == [("live", "2"), ("deactivated", "1")]
    again = RenderRollback().run(stages.context("render.rollback"), params)
    assert again.outputs.to_deploy == first and render.client.live_deploy(SRV).commit_id == "1" * 40


def test_rollback_to_a_named_deploy_and_its_compensation_goes_forward_again(stages):
    render = stages.render
    first = render.deploy_live(commit="1" * 40)
    render.deploy_live(commit="2" * 40)
    render.deploy_live(commit="3" * 40)
    params = RenderRollback.Params(service="web", to=first)
    result = RenderRollback().run(stages.context("render.rollback"), params)
    assert render.client.live_deploy(SRV).commit_id == "1" * 40
    assert result.warnings and "auto-deploy turned off for web" in result.warnings[0]
    comp = RenderRollback().compensate(stages.context("render.rollback"), params, result.outputs)
    assert (comp.action, comp.verified) == ("rolled_back", True)
    assert render.client.live_deploy(SRV).commit_id == "3" * 40


def test_rollback_with_nothing_to_return_to_fails_and_says_what_is_live(stages):
    live = stages.render.deploy_live(commit="1" * 40)
    with pytest.raises(StageFailed, match=f"no earlier successful deploy to roll back to \\(live: {live} at commit"):
        RenderRollback().run(stages.context("render.rollback"), RenderRollback.Params(service="web"))


def test_a_timed_out_deploy_left_running_is_cancelled_by_its_compensation(stages):
    old = stages.render.deploy_live(commit="1" * 40)
    with pytest.raises(StageFailed, match="still build_in_progress after 10s; it may still go live") as info:
        _deploy(stages, commit="2" * 40, timeout_s=10, cancel_on_timeout=False)
    assert info.value.production_changed is True
    outputs = info.value.outputs
    comp = RenderDeploy().compensate(stages.context("render.deploy"), RenderDeploy.Params(service="web"), outputs)
    assert (comp.action, comp.verified) == ("canceled", True)
    assert stages.render.client.live_deploy(SRV).id == old
    assert stages.render.service().deploys[-1].status == "canceled"
