"""Run a pipeline: stages in order, transient retries, outputs passed forward, compensations in reverse.

The runner only emits lifecycle events to the journal (reporters subscribe to
it) and decides the outcome and exit code:

    no failure                                   -> deployed     (0)
    failure, production untouched                -> blocked      (1)
    failure, rolled back and every undo verified -> rolled_back  (3)
    failure, an undo failed/unverified or absent -> needs_human  (4)
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

import structlog
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from deploypipe.compensation import compensate_stages, error_dict as _error_dict
from deploypipe.conditions import should_run
from deploypipe.errors import DeployPipeError, ExitCode, StageErrored, StageFailed, TransientError
from deploypipe.journal import Journal
from deploypipe.resources import Resources
from deploypipe.spec.loader import LoadedPipeline
from deploypipe.spec.model import RetrySpec, StageSpec
from deploypipe.stages.base import StageContext, StageResult
from deploypipe.stages.registry import get_stage

__all__ = ["OUTCOMES", "Runner", "StageRecord", "pipeline_digest"]

log = structlog.get_logger("deploypipe.runner")

OUTCOMES = {
    "deployed": ExitCode.DEPLOYED,
    "blocked": ExitCode.BLOCKED,
    "rolled_back": ExitCode.ROLLED_BACK,
    "needs_human": ExitCode.NEEDS_HUMAN,
    # manual rollbacks (`invoke rollback`): the requested undo happened and was verified, or not
    "rollback_verified": ExitCode.DEPLOYED,
    "rollback_failed": ExitCode.NEEDS_HUMAN,
}


def pipeline_digest(loaded: LoadedPipeline) -> str:
    """Fingerprint of the stage list, so a resume can refuse a pipeline that changed since."""
    stages = [[s.id, s.type, s.with_] for s in loaded.spec.stages]
    return hashlib.sha256(json.dumps(stages, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class StageRecord:
    id: str
    type: str
    status: str = "not_run"
    attempts: int = 0
    duration_s: float = 0.0
    error: dict[str, Any] | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    summary: str = ""
    changed_production: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


class Runner:
    """Executes one run of a loaded pipeline against ``resources``, recording into ``journal``."""

    def __init__(self, loaded: LoadedPipeline, resources: Resources, journal: Journal, *,
                 sleep: Callable[[float], None] | None = None, clock: Callable[[], float] | None = None,
                 now: Callable[[], datetime] | None = None):
        self.loaded = loaded
        self.spec = loaded.spec
        self.resources = resources
        self.journal = journal
        self.sleep = sleep or resources.sleep
        self.clock = clock or resources.clock
        self.now = now or (lambda: datetime.now(timezone.utc))
        self.outputs: dict[str, dict[str, Any]] = {}
        self.records: dict[str, StageRecord] = {s.id: StageRecord(s.id, s.type) for s in self.spec.stages}
        self.changed: list[str] = []  # ids of stages that changed production, in completion order
        self.deploys: list[dict[str, Any]] = []
        self.rollback: dict[str, Any] = {"performed": False, "verified": None, "items": []}
        self.message = ""

    # -- context -----------------------------------------------------------------
    def _context(self, stage: StageSpec, attempt: int = 1, prior: tuple[Mapping[str, Any], ...] = (),
                 outcome: str = "running") -> StageContext:
        timeout = stage.timeout_s if stage.timeout_s is not None else self.spec.defaults.timeout_s
        bound = log.bind(stage=stage.id, stage_type=stage.type)

        def emit(event: str, **fields: Any) -> None:
            self.journal.emit(event, stage=stage.id, **fields)

        outputs = dict(self.outputs)
        outputs["_run"] = self._summary(outcome)
        return StageContext(
            run_id=self.journal.run_id, stage_id=stage.id, stage_type=stage.type, pipeline_name=self.spec.name,
            pipeline_path=self.loaded.path, run_dir=self.journal.run_dir, resources=self.resources,
            outputs=outputs, emit=emit, log=bound, sleep=self.sleep, clock=self.clock, now=self.now,
            timeout_s=timeout, prior_events=prior, attempt=attempt,
        )

    # -- one stage ---------------------------------------------------------------
    def _retrying(self, stage: StageSpec) -> Retrying:
        policy: RetrySpec = stage.retry or self.spec.defaults.retry

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            wait = state.next_action.sleep if state.next_action else 0.0
            self.journal.emit("stage_retrying", stage=stage.id, attempt=state.attempt_number,
                              wait_s=round(wait, 3), reason=str(exc))
            log.warning("retrying", stage=stage.id, attempt=state.attempt_number, wait_s=round(wait, 3), reason=str(exc))

        return Retrying(
            stop=stop_after_attempt(policy.attempts),
            wait=wait_exponential(multiplier=policy.backoff_s, max=policy.max_backoff_s) + wait_random(0, policy.backoff_s / 2),
            retry=retry_if_exception_type(TransientError),
            sleep=self.sleep, reraise=True, before_sleep=before_sleep,
        )

    def _run_stage(self, stage: StageSpec, prior: tuple[Mapping[str, Any], ...] = (),
                   outcome: str = "running") -> BaseException | None:
        record = self.records[stage.id]
        impl = get_stage(stage.type)
        params = self.loaded.params[stage.id]
        service = getattr(params, "service", None)
        structlog.contextvars.bind_contextvars(stage=stage.id, **({"service": service} if isinstance(service, str) else {}))
        self.journal.emit("stage_started", stage=stage.id, type=stage.type, plan=impl.plan(params))
        started = self.clock()
        try:
            for attempt in self._retrying(stage):
                with attempt:
                    record.attempts = attempt.retry_state.attempt_number
                    result: StageResult = impl.run(self._context(stage, record.attempts, prior, outcome), params)
        except BaseException as exc:  # noqa: BLE001 - every failure is recorded, KeyboardInterrupt included
            record.duration_s = round(self.clock() - started, 3)
            record.error = _error_dict(exc)
            record.status = "failed" if isinstance(exc, StageFailed) else "errored"
            changed = bool(getattr(exc, "attrs", {}).get("production_changed"))
            record.changed_production = changed
            if changed:
                record.outputs = dict(getattr(exc, "attrs", {}).get("outputs") or {})
                self.outputs[stage.id] = {**record.outputs, "_type": stage.type}
                self.changed.append(stage.id)
            self.journal.emit(f"stage_{record.status}", stage=stage.id, attempts=record.attempts,
                              duration_s=record.duration_s, error=record.error, changed_production=changed,
                              outputs=record.outputs)
            log.error(f"stage_{record.status}", stage=stage.id, error=record.error["message"])
            return exc
        finally:
            structlog.contextvars.unbind_contextvars("stage", "service")
        record.duration_s = round(self.clock() - started, 3)
        record.status = "succeeded"
        record.outputs = dict(result.outputs)
        record.warnings = list(result.warnings)
        record.summary = result.summary
        record.changed_production = result.changed_production
        self.outputs[stage.id] = {**record.outputs, "_type": stage.type}
        self.deploys.extend(dict(d) for d in result.deploys)
        if result.changed_production:
            self.changed.append(stage.id)
        for warning in result.warnings:
            log.warning("stage_warning", stage=stage.id, warning=warning)
        self.journal.emit("stage_succeeded", stage=stage.id, attempts=record.attempts, duration_s=record.duration_s,
                          outputs=record.outputs, changed_production=result.changed_production,
                          warnings=record.warnings, summary=result.summary, deploys=list(result.deploys))
        return None

    # -- compensation ------------------------------------------------------------
    def compensate(self, stage_ids: list[str]) -> None:
        """Undo ``stage_ids`` (completion order) in reverse, then re-verify health; fills ``self.rollback``."""
        self.rollback["performed"] = True
        result = compensate_stages(self.spec.stages, self.loaded.params, stage_ids, outputs=self.outputs,
                                   context=self._context, emit=self.journal.emit)
        self.rollback["items"].extend(result.items)
        self.deploys.extend(result.deploys)
        self.rollback["verified"] = all(item["verified"] for item in self.rollback["items"])
        self.journal.emit("rollback_finished", verified=self.rollback["verified"])

    # -- whole run ---------------------------------------------------------------
    def _summary(self, outcome: str) -> dict[str, Any]:
        return {
            "run_id": self.journal.run_id, "pipeline": self.spec.name, "outcome": outcome,
            "exit_code": int(OUTCOMES.get(outcome, 0)),
            "stages": [{"id": r.id, "type": r.type, "status": r.status, "duration_s": r.duration_s}
                       for r in self.records.values()],
            "deploys": list(self.deploys), "rollback": dict(self.rollback),
            "report_path": str(self.journal.run_dir / "report.json"),
        }

    def restore(self, previous: list[Mapping[str, Any]]) -> dict[str, tuple[Mapping[str, Any], ...]]:
        """Take over an interrupted run's finished stages; return unfinished stages' events (for resume)."""
        unfinished: dict[str, list[Mapping[str, Any]]] = {}
        for event in previous:
            stage_id = event.get("stage")
            if stage_id not in self.records:
                continue
            if event["event"] == "stage_succeeded":
                record = self.records[stage_id]
                record.status, record.outputs = "succeeded", dict(event.get("outputs") or {})
                record.summary = "done in an earlier attempt of this run"
                record.changed_production = bool(event.get("changed_production"))
                self.outputs[stage_id] = {**record.outputs, "_type": record.type}
                if record.changed_production:
                    self.changed.append(stage_id)
                self.deploys.extend(event.get("deploys") or [])
                unfinished.pop(stage_id, None)
            elif event["event"] in ("stage_failed", "stage_errored"):
                unfinished.pop(stage_id, None)
            else:
                unfinished.setdefault(stage_id, []).append(event)
        return {k: tuple(v) for k, v in unfinished.items()}

    def run(self, *, resume_events: list[Mapping[str, Any]] | None = None, resumed_from: str | None = None,
            manual_rollback: bool = False) -> dict[str, Any]:
        """Run the stages; with ``manual_rollback`` the outcome is named rollback_verified / rollback_failed."""
        report_outcome = self._run_stages(resume_events, resumed_from)
        started_at, outcome = report_outcome
        if manual_rollback and outcome != "blocked":
            outcome = "rollback_verified" if outcome == "deployed" else "rollback_failed"
        elif manual_rollback:
            outcome = "rollback_failed" if any(r.status in ("failed", "errored") for r in self.records.values()) else outcome
        return self._finish(outcome, started_at, resumed_from)

    def _run_stages(self, resume_events: list[Mapping[str, Any]] | None, resumed_from: str | None) -> tuple[datetime, str]:
        started_at = self.now()
        self.journal.emit("run_started", pipeline=self.spec.name, path=str(self.loaded.path),
                          digest=pipeline_digest(self.loaded), stages=[s.id for s in self.spec.stages],
                          resumed_from=resumed_from)
        unfinished = self.restore(resume_events) if resume_events else {}
        failure: tuple[StageSpec, BaseException] | None = None
        for stage in self.spec.stages:
            record = self.records[stage.id]
            if record.status == "succeeded":
                self.journal.emit("stage_resumed", stage=stage.id)
                continue
            if failure is not None and stage.when not in ("always", "on_failure"):
                continue
            if failure is None and stage.when == "on_failure":
                continue
            if not should_run(stage.when, failed=failure is not None, outputs=self.outputs):
                record.status = "skipped"
                self.journal.emit("stage_skipped", stage=stage.id, when=stage.when)
                continue
            if failure is not None:
                continue  # always/on_failure stages run after the rollback, below
            exc = self._run_stage(stage, unfinished.get(stage.id, ()))
            if exc is None:
                continue
            if stage.on_failure == "continue" and not isinstance(exc, KeyboardInterrupt):
                self.records[stage.id].warnings.append("failure ignored (on_failure: continue)")
                continue
            failure = (stage, exc)
        outcome = "deployed"
        if failure is not None:
            stage, exc = failure
            detail = exc.message + (f"; hint: {exc.hint}" if exc.hint else "") if isinstance(exc, DeployPipeError) else _error_dict(exc)["message"]
            self.message = f"stage {stage.id} ({stage.type}) {self.records[stage.id].status}: {detail}"
            if not self.changed:
                outcome = "blocked"
            elif stage.on_failure == "stop":
                outcome = "needs_human"
                self.message += ("; production was changed by " + ", ".join(self.changed)
                                 + " and the pipeline says on_failure: stop, so nothing was rolled back")
            else:
                self.compensate(list(self.changed))
                outcome = "rolled_back" if self.rollback["verified"] else "needs_human"
                if outcome == "needs_human":
                    broken = [i for i in self.rollback["items"] if not i["verified"]]
                    self.message += "; ROLLBACK NOT VERIFIED: " + "; ".join(f"{i['stage']}: {i['summary']}" for i in broken)
            self._finalizers(failure=True, outcome=outcome)
            if isinstance(exc, KeyboardInterrupt):
                self.message += " (interrupted)"
        else:
            shipped = ", ".join(f"{d.get('service')} at {str(d.get('commit') or '')[:12]}" for d in self.deploys)
            self.message = "deployed and verified" + (f": {shipped}" if shipped else "")
            self._finalizers(failure=False, outcome="deployed")
        return started_at, outcome

    def undo(self, previous: list[Mapping[str, Any]], undoing: str) -> dict[str, Any]:
        """``rollback --run``: compensate what run ``undoing`` changed and did not already undo."""
        started_at = self.now()
        self.journal.emit("run_started", pipeline=self.spec.name, path=str(self.loaded.path), kind="rollback",
                          undoing=undoing, digest=pipeline_digest(self.loaded))
        unfinished = self.restore(previous)
        for stage in self.spec.stages:  # killed mid-way after a point of no return (e.g. a deploy was triggered)
            marker = getattr(get_stage(stage.type), "compensation_event", None)
            event = next((e for e in reversed(unfinished.get(stage.id, ())) if e.get("event") == marker), None)
            if marker and event is not None:
                meta = {"seq", "ts", "run_id", "event", "stage"}
                self.outputs[stage.id] = {**{k: v for k, v in event.items() if k not in meta}, "_type": stage.type}
                self.records[stage.id].status = "interrupted"
                self.changed.append(stage.id)
        undone = {e.get("stage") for e in previous if e.get("event") == "compensation_succeeded"}
        todo = [stage_id for stage_id in self.changed if stage_id not in undone]
        for record in self.records.values():
            if record.status == "succeeded":
                record.status = "from_run"
        if not todo:
            self.message = f"run {undoing} left nothing to undo (no stage changed production, or it was undone already)"
            return self._finish("rollback_verified", started_at, None)
        self.compensate(todo)
        verified = bool(self.rollback["verified"])
        self.message = (f"undid {', '.join(reversed(todo))} from run {undoing}" if verified else
                        "ROLLBACK NOT VERIFIED: " + "; ".join(f"{i['stage']}: {i['summary']}"
                                                            for i in self.rollback["items"] if not i["verified"]))
        return self._finish("rollback_verified" if verified else "rollback_failed", started_at, None)

    def _finalizers(self, *, failure: bool, outcome: str) -> None:
        """Run the `always` / `on_failure` stages still due; they see the run's provisional outcome in `_run`."""
        for stage in self.spec.stages:
            if self.records[stage.id].status != "not_run" or stage.when not in ("always", "on_failure"):
                continue
            if stage.when == "on_failure" and not failure:
                continue
            self._run_stage(stage, outcome=outcome)

    def _finish(self, outcome: str, started_at: datetime, resumed_from: str | None) -> dict[str, Any]:
        exit_code = int(OUTCOMES[outcome])
        report = {
            "run_id": self.journal.run_id, "pipeline": self.spec.name, "pipeline_path": str(self.loaded.path),
            "started_at": started_at.isoformat(), "finished_at": self.now().isoformat(),
            "outcome": outcome, "exit_code": exit_code, "message": self.message or outcome,
            "resumed_from": resumed_from,
            "stages": [r.as_dict() for r in self.records.values()],
            "deploys": self.deploys, "rollback": self.rollback, "run_dir": str(self.journal.run_dir),
        }
        self.journal.emit("run_finished", outcome=outcome, exit_code=exit_code, message=report["message"])
        self.journal.write_report(report)
        return self.journal.redactor(report)
