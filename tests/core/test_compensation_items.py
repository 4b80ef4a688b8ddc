"""What a rollback records when it cannot do its job: a stage that changed production without outputs to undo it
with, a compensation that raises, and a health re-verification that raises are each an unverified item with the
reason, journalled as such; none of them crashes the rollback or passes for verified."""

from __future__ import annotations

from typing import Any

from deploypipe.engine.compensation import _reverify, compensate_stages
from deploypipe.spec.model import StageSpec
from deploypipe.spec.targets import ServiceTarget, Targets
from deploypipe.stages.base import Restored
from deploypipe.stages.context import Resources
from deploypipe.stages.http import VerifyHealth
from deploypipe.stages.shell import ShellRun
from deploypipe.testing import stage_context


def _undo(tmp_path, stages: list[tuple[StageSpec, Any]], done: list[str], outputs: dict[str, Any]):
    resources = Resources(project_dir=tmp_path, state_dir=tmp_path / ".deploypipe", env={})
    events: list[dict[str, Any]] = []
    items, _ = compensate_stages(
        [spec for spec, _ in stages], {spec.id: params for spec, params in stages}, done, outputs=outputs,
        context=lambda spec: stage_context(resources, stage_id=spec.id, stage_type=spec.type, run_dir=tmp_path / "run"),
        emit=lambda event, **fields: events.append({"event": event, **fields}))
    return items, events


def test_a_stage_that_changed_production_but_left_no_outputs_cannot_be_undone(tmp_path):
    change = StageSpec(id="change", type="shell.run", with_={"command": "true", "changes_production": True})
    items, events = _undo(tmp_path, [(change, ShellRun.Params(command="true", changes_production=True,
                                                              compensate_command="true"))], ["change"], outputs={})
    assert [(i.stage, i.action, i.verified, i.summary) for i in items] == [
        ("change", "cannot_undo", False, "change changed production but left no outputs to undo it with")]
    assert [e["event"] for e in events] == ["rollback_started", "compensation_started", "compensation_failed"]


def test_a_compensation_that_raises_is_a_failed_item_with_its_message(tmp_path):
    params = ShellRun.Params(command="true", changes_production=True, compensate_command="true",
                             cwd=str(tmp_path / "gone"))
    change = StageSpec(id="change", type="shell.run", with_={"command": "true"})
    outputs = {"change": ShellRun.Outputs(exit_code=0, duration_s=0.1, output_tail="", log="")}
    items, events = _undo(tmp_path, [(change, params)], ["change"], outputs=outputs)
    [item] = items
    assert (item.action, item.verified) == ("failed", False) and "gone" in item.summary
    assert events[-1]["event"] == "compensation_failed" and events[-1]["action"] == "failed"


def test_a_health_re_verification_that_raises_is_unverified_with_its_reason(tmp_path):
    verify = StageSpec(id="verify", type="verify.health", with_={"service": "web"})
    targets = Targets(services={"web": ServiceTarget(name="web")})  # no url: Render must be asked, without a key
    resources = Resources(project_dir=tmp_path, state_dir=tmp_path / ".deploypipe", env={}, targets=targets)
    ctx = stage_context(resources, stage_id="verify", stage_type="verify.health", run_dir=tmp_path / "run")
    events: list[dict[str, Any]] = []
    items = _reverify([verify], {"verify": VerifyHealth.Params(service="web")},
                      {"web": Restored(service="web", commit="abc1234")}, lambda spec: ctx,
                      lambda event, **fields: events.append({"event": event, **fields}))
    [item] = items
    assert (item.stage, item.action, item.verified) == ("verify", "health_unverified", False)
    assert "RENDER_API_KEY" in item.summary
    assert [e["event"] for e in events] == ["rollback_unverified"] and events[0]["summary"] == item.summary
