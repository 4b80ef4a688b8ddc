"""Undo stages that changed production, in reverse order of completion, then re-verify health.

A compensation that raises is recorded as failed, never swallowed: the run's
outcome then becomes ``needs_human`` (exit 4). After the undo, every stage
that can check a rolled-back release (``verify_after_rollback``) is asked to
prove the previous release serves again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import structlog

from deploypipe.errors import DeployPipeError
from deploypipe.spec.model import StageSpec
from deploypipe.stages.base import Compensation, StageContext
from deploypipe.stages.registry import get_stage

__all__ = ["CompensationResult", "compensate_stages", "error_dict"]

log = structlog.get_logger("deploypipe.rollback")


def error_dict(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, DeployPipeError):
        return exc.to_dict()
    return {"type": type(exc).__name__, "message": str(exc) or type(exc).__name__}


@dataclass
class CompensationResult:
    items: list[dict[str, Any]] = field(default_factory=list)
    deploys: list[dict[str, Any]] = field(default_factory=list)


def _item(stage: StageSpec, comp: Compensation) -> dict[str, Any]:
    return {"stage": stage.id, "type": stage.type, "action": comp.action, "verified": comp.verified,
            "summary": comp.summary, "details": dict(comp.details)}


def _undo_one(stage: StageSpec, params: Any, outputs: Mapping[str, Any], ctx: StageContext) -> Compensation:
    impl = get_stage(stage.type)
    if not hasattr(impl, "compensate"):
        return Compensation(action="cannot_undo", verified=False,
                            summary=f"{stage.type} changed production and has no compensation")
    try:
        return impl.compensate(ctx, params, outputs)
    except BaseException as exc:  # noqa: BLE001 - a failing compensation is recorded, never swallowed
        return Compensation(action="failed", verified=False, summary=error_dict(exc)["message"])


def compensate_stages(
    stages: Sequence[StageSpec], params: Mapping[str, Any], stage_ids: list[str], *,
    outputs: Mapping[str, Mapping[str, Any]], context: Callable[[StageSpec], StageContext],
    emit: Callable[..., Any],
) -> CompensationResult:
    result = CompensationResult()
    by_id = {s.id: s for s in stages}
    rolled_back: dict[str, str | None] = {}
    emit("rollback_started", stages=list(reversed(stage_ids)))
    for stage_id in reversed(stage_ids):
        stage = by_id[stage_id]
        emit("compensation_started", stage=stage_id, type=stage.type)
        comp = _undo_one(stage, params[stage_id], outputs.get(stage_id, {}), context(stage))
        if comp.action == "rolled_back" and comp.details.get("service"):
            rolled_back[str(comp.details["service"])] = comp.details.get("commit")
        result.deploys.extend(dict(d) for d in comp.deploys)
        item = _item(stage, comp)
        result.items.append(item)
        event = "compensation_succeeded" if comp.verified else "compensation_failed"
        emit(event, **item)
        (log.info if comp.verified else log.error)(event, stage=stage_id, action=comp.action, summary=comp.summary)
    if rolled_back:
        for stage in stages:
            verify = getattr(get_stage(stage.type), "verify_after_rollback", None)
            if verify is None:
                continue
            try:
                check = verify(context(stage), params[stage.id], rolled_back)
            except BaseException as exc:  # noqa: BLE001
                check = Compensation(action="health_unverified", verified=False, summary=error_dict(exc)["message"])
            if check is not None:
                item = _item(stage, check)
                result.items.append(item)
                emit("rollback_verified" if check.verified else "rollback_unverified", **item)
    return result
