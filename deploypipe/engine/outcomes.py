"""What one stage attempt leaves behind: its record in the run state, its journal event and its log line."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Callable

import structlog

from deploypipe.engine.state import RunState
from deploypipe.errors import StageErrored, StageFailed
from deploypipe.spec.model import StageSpec
from deploypipe.stages.base import Outputs, StageResult
from deploypipe.stages.report import ErrorInfo

__all__ = ["record_failure", "record_success"]

log = structlog.get_logger("deploypipe.runner")


def record_failure(state: RunState, stage: StageSpec, exc: BaseException, *, duration_s: float,
                   finished_at: datetime, emit: Callable[..., Any]) -> None:
    """A stage that failed (it said no) or errored (it could not run): recorded, with what it changed."""
    record = state.records[stage.id]
    record.duration_s = duration_s
    record.finished_at = finished_at
    record.error = ErrorInfo.of(exc)
    record.status = "failed" if isinstance(exc, StageFailed) else "errored"
    changed = isinstance(exc, (StageFailed, StageErrored)) and exc.production_changed
    outputs = exc.outputs if isinstance(exc, (StageFailed, StageErrored)) else None
    record.changed_production = changed
    if isinstance(outputs, Outputs):  # what the stage got to: shown in the report, compensated with if changed
        record.outputs = outputs.model_dump(mode="json")
        if changed:
            state.outputs[stage.id] = outputs
    if changed:
        state.mark_changed(stage.id)
    emit(f"stage_{record.status}", stage=stage.id, attempts=record.attempts, duration_s=record.duration_s,
         error=record.error.model_dump(mode="json"), changed_production=changed, outputs=record.outputs)
    log.error(f"stage_{record.status}", stage=stage.id, error=record.error.message)


def record_success(state: RunState, stage: StageSpec, result: StageResult[Any], *, duration_s: float,
                   finished_at: datetime, emit: Callable[..., Any]) -> None:
    """A stage that succeeded: its outputs passed forward, its deploys, warnings and caveat kept for the report."""
    record = state.records[stage.id]
    record.duration_s = duration_s
    record.finished_at = finished_at
    record.status = "succeeded"
    record.outputs = result.outputs.model_dump(mode="json")
    record.warnings = list(result.warnings)
    record.summary = result.summary
    record.changed_production = result.changed_production
    state.outputs[stage.id] = result.outputs
    state.deploys.extend(result.deploys)
    if result.caveat:
        state.caveats.append(f"{stage.id}: {result.caveat}")
    if result.changed_production:
        state.mark_changed(stage.id)
    log.info("stage_succeeded", stage=stage.id, duration_s=duration_s, summary=result.summary)
    for warning in result.warnings:
        log.warning("stage_warning", stage=stage.id, warning=warning)
    emit("stage_succeeded", stage=stage.id, attempts=record.attempts, duration_s=record.duration_s,
         outputs=record.outputs, changed_production=result.changed_production, warnings=record.warnings,
         summary=result.summary, deploys=[d.model_dump(mode="json") for d in result.deploys])
