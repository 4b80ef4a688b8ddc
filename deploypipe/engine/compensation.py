"""Undo stages that changed production, in reverse order of completion, then re-verify health.

A compensation that raises is recorded as failed, never swallowed: the run's
outcome then becomes ``needs_human`` (exit 4). After the undo, every stage
that can check a rolled-back release (:class:`VerifiesRollback`) is asked to
prove the restored release serves again.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import structlog

from deploypipe.spec.model import StageSpec
from deploypipe.stages.base import Compensation, DeployRecord, Outputs, Restored
from deploypipe.stages.context import StageContext
from deploypipe.stages.protocols import Compensating, VerifiesRollback
from deploypipe.stages.registry import get_stage
from deploypipe.stages.report import ErrorInfo, RollbackItem

__all__ = ["compensate_stages"]

log = structlog.get_logger("deploypipe.rollback")


def _item(stage: StageSpec, comp: Compensation) -> RollbackItem:
    return RollbackItem(stage=stage.id, type=stage.type, action=comp.action, verified=comp.verified,
                        summary=comp.summary, details=dict(comp.details))


def _undo_one(stage: StageSpec, params: Any, outputs: Outputs | None, ctx: StageContext) -> Compensation:
    impl = get_stage(stage.type)
    if not isinstance(impl, Compensating):
        return Compensation(action="cannot_undo", verified=False,
                            summary=f"{stage.type} changed production and has no compensation")
    if outputs is None:
        return Compensation(action="cannot_undo", verified=False,
                            summary=f"{stage.id} changed production but left no outputs to undo it with")
    try:
        return impl.compensate(ctx, params, outputs)
    except BaseException as exc:  # noqa: BLE001 - a failing compensation is recorded, never swallowed
        return Compensation(action="failed", verified=False, summary=ErrorInfo.of(exc).message)


def _reverify(stages: Sequence[StageSpec], params: Mapping[str, Any], restored: Mapping[str, Restored],
              context: Callable[[StageSpec], StageContext], emit: Callable[..., Any]) -> list[RollbackItem]:
    items = []
    for stage in stages:
        impl = get_stage(stage.type)
        if not isinstance(impl, VerifiesRollback):
            continue
        try:
            check = impl.verify_after_rollback(context(stage), params[stage.id], restored)
        except BaseException as exc:  # noqa: BLE001 - an exception is an unverified rollback, never a crash
            check = Compensation(action="health_unverified", verified=False, summary=ErrorInfo.of(exc).message)
        if check is not None:
            item = _item(stage, check)
            items.append(item)
            emit("rollback_verified" if check.verified else "rollback_unverified", **item.model_dump(mode="json"))
    return items


def compensate_stages(stages: Sequence[StageSpec], params: Mapping[str, Any], stage_ids: list[str], *,
                      outputs: Mapping[str, Outputs], context: Callable[[StageSpec], StageContext],
                      emit: Callable[..., Any]) -> tuple[list[RollbackItem], list[DeployRecord]]:
    """Undo ``stage_ids`` (given in completion order) in reverse; then re-verify each restored release."""
    by_id = {s.id: s for s in stages}
    items: list[RollbackItem] = []
    deploys: list[DeployRecord] = []
    restored: dict[str, Restored] = {}
    emit("rollback_started", stages=list(reversed(stage_ids)))
    for stage_id in reversed(stage_ids):
        stage = by_id[stage_id]
        emit("compensation_started", stage=stage_id, type=stage.type)
        comp = _undo_one(stage, params[stage_id], outputs.get(stage_id), context(stage))
        if comp.restored is not None:
            restored[comp.restored.service] = comp.restored
        deploys.extend(comp.deploys)
        item = _item(stage, comp)
        items.append(item)
        event = "compensation_succeeded" if comp.verified else "compensation_failed"
        emit(event, **item.model_dump(mode="json"))
        (log.info if comp.verified else log.error)(event, stage=stage_id, action=comp.action, summary=comp.summary)
    if restored:
        items.extend(_reverify(stages, params, restored, context, emit))
    return items, deploys
