"""Take a run over from its journal: the stages it finished, and those a signal stopped past their point of no return.

``deploy --resume RUN`` skips the stages the journal says succeeded (their
typed outputs are read back), and ``rollback --run RUN`` also counts as
changed a stage killed after it journalled its point of no return (e.g. a
deploy that was triggered), so its compensation runs.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping, Sequence

from deploypipe.engine.loader import LoadedPipeline
from deploypipe.engine.state import RunState
from deploypipe.errors import UsageError
from deploypipe.spec.model import StageSpec
from deploypipe.stages.base import DeployRecord, Outputs
from deploypipe.stages.protocols import Interruptible
from deploypipe.stages.registry import get_stage

__all__ = ["pipeline_digest", "restore_finished", "take_over_interrupted"]

_JOURNAL_META = ("seq", "ts", "run_id", "event", "stage")


def pipeline_digest(loaded: LoadedPipeline) -> str:
    """Fingerprint of the stage list, so a resume can refuse a pipeline that changed since."""
    stages = [[s.id, s.type, s.with_] for s in loaded.spec.stages]
    return hashlib.sha256(json.dumps(stages, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _outputs_of(stage: StageSpec, data: Mapping[str, Any] | None, run_id: str) -> Outputs:
    """A stage's outputs read back from the journal, as its typed model."""
    try:
        return get_stage(stage.type).Outputs.model_validate(dict(data or {}))
    except ValueError as exc:
        raise UsageError(f"run {run_id}: the journalled outputs of stage {stage.id} do not fit {stage.type} "
                         f"({str(exc).splitlines()[0]})", hint="this run cannot be resumed; undo it with "
                         f"`invoke rollback --run {run_id}`") from None


def restore_finished(state: RunState, stages: Sequence[StageSpec],
                     previous: Sequence[Mapping[str, Any]]) -> dict[str, tuple[Mapping[str, Any], ...]]:
    """Put an interrupted run's finished stages into ``state``; return unfinished stages' events (for resume)."""
    by_id = {s.id: s for s in stages}
    unfinished: dict[str, list[Mapping[str, Any]]] = {}
    for event in previous:
        stage_id = event.get("stage")
        if stage_id not in by_id:
            continue
        if event["event"] == "stage_succeeded":
            record = state.records[stage_id]
            outputs = _outputs_of(by_id[stage_id], event.get("outputs"), event.get("run_id") or "?")
            record.status, record.outputs = "succeeded", outputs.model_dump(mode="json")
            record.summary = "done in an earlier attempt of this run"
            record.changed_production = bool(event.get("changed_production"))
            state.outputs[stage_id] = outputs
            if record.changed_production:
                state.mark_changed(stage_id)
            state.deploys.extend(DeployRecord.model_validate(d) for d in event.get("deploys") or [])
            unfinished.pop(stage_id, None)
        elif event["event"] in ("stage_failed", "stage_errored"):
            unfinished.pop(stage_id, None)
        else:
            unfinished.setdefault(stage_id, []).append(event)
    return {k: tuple(v) for k, v in unfinished.items()}


def take_over_interrupted(state: RunState, stages: Sequence[StageSpec],
                          unfinished: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
    """Mark as changed each stage killed after journalling its point of no return, with outputs from that event."""
    for stage in stages:
        impl = get_stage(stage.type)
        if not isinstance(impl, Interruptible):
            continue
        event = next((e for e in reversed(unfinished.get(stage.id, ()))
                      if e.get("event") == impl.point_of_no_return), None)
        if event is not None:
            fields = {k: v for k, v in event.items() if k not in _JOURNAL_META}
            state.outputs[stage.id] = impl.outputs_from_event(fields)
            state.records[stage.id].status = "interrupted"
            state.mark_changed(stage.id)
