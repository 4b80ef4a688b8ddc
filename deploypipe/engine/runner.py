"""Run a pipeline: stages in order, transient retries, typed outputs passed forward, compensations in reverse.

The runner emits lifecycle events to the journal (reporters subscribe to it),
keeps the run's state and decides the outcome:

    no failure                                   -> deployed     (0)
    failure, production untouched                -> blocked      (1)
    failure, rolled back and every undo verified -> rolled_back  (3)
    failure, an undo failed/unverified or absent -> needs_human  (4)
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Callable, Mapping, Protocol, Sequence

import structlog

from deploypipe.engine.compensation import compensate_stages
from deploypipe.engine.journal import Journal
from deploypipe.engine.loader import LoadedPipeline
from deploypipe.engine.outcomes import record_failure, record_success
from deploypipe.engine.resume import pipeline_digest, restore_finished, take_over_interrupted
from deploypipe.engine.retrying import retrying
from deploypipe.engine.signals import shielded, signal_name, signum_of
from deploypipe.engine.state import RunState
from deploypipe.engine.unchanged import nothing_to_release
from deploypipe.errors import DeployPipeError, StageErrored
from deploypipe.spec import when as when_language
from deploypipe.spec.model import StageSpec
from deploypipe.stages.base import Params, StageResult
from deploypipe.stages.context import Resources, StageContext
from deploypipe.stages.registry import get_stage
from deploypipe.stages.report import Diagnostic, ErrorInfo, Outcome, Report

__all__ = ["RunGuard", "Runner"]

log = structlog.get_logger("deploypipe.runner")


class RunGuard(Protocol):
    """What keeps a run safe to continue: the release lock (see deploypipe.engine.locking.ReleaseLock)."""

    def lost(self) -> str | None: ...

    def regain(self) -> str | None: ...


class _Unguarded:
    def lost(self) -> str | None:
        return None

    def regain(self) -> str | None:
        return None


class Runner:
    """Executes one run of a loaded pipeline against ``resources``, recording into ``journal``."""

    def __init__(self, loaded: LoadedPipeline, resources: Resources, journal: Journal, *,
                 sleep: Callable[[float], None] | None = None, clock: Callable[[], float] | None = None,
                 now: Callable[[], datetime] | None = None, guard: RunGuard | None = None, force: bool = False):
        self.loaded = loaded
        self.guard = guard or _Unguarded()
        self.force = force
        self.spec = loaded.spec
        self.resources = resources
        self.journal = journal
        self.sleep = sleep or resources.sleep
        self.clock = clock or resources.clock
        self.now = now or (lambda: datetime.now(UTC))
        self.state = RunState(run_id=journal.run_id, pipeline=self.spec.name, pipeline_path=loaded.path,
                              run_dir=journal.run_dir, started_at=self.now(), stages=list(self.spec.stages))

    # -- context -----------------------------------------------------------------
    def _context(self, stage: StageSpec, attempt: int = 1, prior: tuple[Mapping[str, Any], ...] = (),
                 outcome: Outcome = Outcome.RUNNING) -> StageContext:
        timeout = stage.timeout_s if stage.timeout_s is not None else self.spec.defaults.timeout_s

        def emit(event: str, **fields: Any) -> None:
            self.journal.emit(event, stage=stage.id, **fields)

        def diagnose(diagnostic: Diagnostic) -> None:
            self.state.diagnostics.append(diagnostic)
            self.journal.emit("diagnostic", **diagnostic.model_dump(mode="json"))

        return StageContext(
            run_id=self.journal.run_id, stage_id=stage.id, stage_type=stage.type, pipeline_name=self.spec.name,
            pipeline_path=self.loaded.path, run_dir=self.journal.run_dir, resources=self.resources,
            earlier=dict(self.state.outputs), run=self.state.report(outcome), emit=emit, diagnose=diagnose,
            log=log.bind(stage=stage.id, stage_type=stage.type), sleep=self.sleep, clock=self.clock, now=self.now,
            timeout_s=timeout, prior_events=prior, attempt=attempt, later=self._later(stage),
        )

    def _later(self, stage: StageSpec) -> dict[str, Params]:
        ids = [s.id for s in self.spec.stages]
        return {i: self.loaded.params[i] for i in ids[ids.index(stage.id) + 1:] if i in self.loaded.params}

    # -- one stage ---------------------------------------------------------------
    def _run_stage(self, stage: StageSpec, prior: tuple[Mapping[str, Any], ...] = (),
                   outcome: Outcome = Outcome.RUNNING) -> BaseException | None:
        record = self.state.records[stage.id]
        impl = get_stage(stage.type)
        params = self.loaded.params[stage.id]
        service = getattr(params, "service", None)
        bound = {"service": service} if isinstance(service, str) else {}
        structlog.contextvars.bind_contextvars(stage=stage.id, **bound)
        self.journal.emit("stage_started", stage=stage.id, type=stage.type, plan=impl.plan(params))
        log.info("stage_started", stage=stage.id, type=stage.type)
        record.started_at = self.now()
        started = self.clock()
        try:
            policy = stage.retry or self.spec.defaults.retry
            for attempt in retrying(stage.id, policy, sleep=self.sleep, emit=self.journal.emit):
                with attempt:
                    record.attempts = attempt.retry_state.attempt_number
                    result: StageResult[Any] = impl.run(self._context(stage, record.attempts, prior, outcome), params)
        except BaseException as exc:  # noqa: BLE001 - every failure is recorded, KeyboardInterrupt included
            record_failure(self.state, stage, exc, duration_s=round(self.clock() - started, 3), finished_at=self.now(),
                           emit=self.journal.emit)
            if isinstance(exc, KeyboardInterrupt):
                self._interrupted(signum_of(exc), stage.id)
            return exc
        finally:
            structlog.contextvars.unbind_contextvars("stage", "service")
        record_success(self.state, stage, result, duration_s=round(self.clock() - started, 3), finished_at=self.now(),
                       emit=self.journal.emit)
        return None

    def _interrupted(self, signum: int, during: str) -> None:
        """Journal what a signal left undone, so ``rollback --run`` can finish the job after a SIGKILL.

        ``during`` is the stage id, ``rollback`` or ``lock`` (waiting for the release lock).
        """
        undone = [s for s in self.state.changed
                  if not any(i.stage == s and i.verified for i in self.state.rollback.items)]
        self.journal.emit("interrupted", signal=signal_name(signum), during=during,
                          left_undone=undone, hint=f"invoke rollback --run {self.journal.run_id}" if undone else "")
        log.warning("interrupted", signal=signal_name(signum), during=during, left_undone=undone)

    # -- compensation ------------------------------------------------------------
    def compensate(self, stage_ids: list[str], prior: Mapping[str, Sequence[Mapping[str, Any]]] | None = None) -> bool:
        """Undo ``stage_ids`` (completion order) in reverse, then re-verify health; True when all verified.

        Signals do not interrupt it (they are journalled). ``prior`` holds each stage's events from an earlier
        process of the run, so a compensation that was already under way (a triggered rollback) is resumed.
        """
        rollback = self.state.rollback
        rollback.performed = True

        def context(stage: StageSpec) -> StageContext:
            return self._context(stage, prior=tuple((prior or {}).get(stage.id, ())))

        with shielded(lambda signum: self._interrupted(signum, "rollback")):
            items, deploys = compensate_stages(self.spec.stages, self.loaded.params, stage_ids,
                                               outputs=self.state.outputs, context=context, emit=self.journal.emit)
        rollback.items.extend(items)
        self.state.deploys.extend(deploys)
        rollback.verified = all(item.verified for item in rollback.items)
        self.journal.emit("rollback_finished", verified=rollback.verified)
        return rollback.verified

    def _unverified(self) -> str:
        return "; ".join(f"{i.stage}: {i.summary}" for i in self.state.rollback.items if not i.verified)

    # -- resume --------------------------------------------------------------------
    def restore(self, previous: Sequence[Mapping[str, Any]]) -> dict[str, tuple[Mapping[str, Any], ...]]:
        """Take over an interrupted run's finished stages; return unfinished stages' events (for resume)."""
        return restore_finished(self.state, self.spec.stages, previous)

    # -- whole run ---------------------------------------------------------------
    def run(self, *, resume_events: Sequence[Mapping[str, Any]] | None = None, resumed_from: str | None = None,
            manual_rollback: bool = False) -> Report:
        """Run the stages; with ``manual_rollback`` the outcome is named rollback_verified / rollback_failed."""
        self.state.resumed_from = resumed_from
        outcome = self._run_stages(resume_events, resumed_from)
        if manual_rollback:
            if outcome is Outcome.DEPLOYED:
                outcome = Outcome.ROLLBACK_VERIFIED
            elif outcome is not Outcome.BLOCKED or self.state.report(outcome).failed_stages():
                outcome = Outcome.ROLLBACK_FAILED
        return self.finish(outcome)

    def _run_stages(self, resume_events: Sequence[Mapping[str, Any]] | None, resumed_from: str | None) -> Outcome:
        self.state.started_at = self.now()  # once the release lock is held: a deploy made before is not a rival
        self.journal.emit("run_started", pipeline=self.spec.name, path=str(self.loaded.path),
                          digest=pipeline_digest(self.loaded), stages=[s.id for s in self.spec.stages],
                          resumed_from=resumed_from)
        log.info("run_started", pipeline=self.spec.name, run_dir=str(self.journal.run_dir))
        unfinished = self.restore(resume_events) if resume_events else {}
        failure: tuple[StageSpec, BaseException] | None = None
        unchanged: str | None = None
        for stage in self.spec.stages:
            record = self.state.records[stage.id]
            if record.status == "succeeded":
                self.journal.emit("stage_resumed", stage=stage.id)
                continue
            if unchanged is not None and stage.when != "always":
                record.status = "skipped"
                self.journal.emit("stage_skipped", stage=stage.id, when=stage.when, reason=unchanged)
                continue
            if failure is not None or stage.when == "on_failure":
                continue  # after a failure, `always` and `on_failure` stages run once the outcome is known, below
            if not when_language.should_run(stage.when, failed=False, outputs=self.state.outputs):
                record.status = "skipped"
                self.journal.emit("stage_skipped", stage=stage.id, when=stage.when)
                continue
            lost = self.guard.lost()
            if lost is not None:
                failure = (stage, self._lock_lost(stage, lost))
                continue
            exc = self._run_stage(stage, unfinished.get(stage.id, ()))
            if exc is None:
                if not self.force:
                    unchanged = nothing_to_release(self.spec.stages, self.state.outputs)
                continue
            if stage.on_failure == "continue" and not isinstance(exc, KeyboardInterrupt):
                record.warnings.append("failure ignored (on_failure: continue)")
                continue
            failure = (stage, exc)
        if failure is None:
            shipped = ", ".join(f"{d.service} at {(d.commit or '')[:12]}" for d in self.state.deploys)
            done = ("deployed, NOT fully verified (" + "; ".join(self.state.caveats) + ")" if self.state.caveats
                    else "deployed and verified")
            self.state.message = unchanged or done + (f": {shipped}" if shipped else "")
            outcome = Outcome.UNCHANGED if unchanged else Outcome.DEPLOYED
            self._finalizers(failed=False, outcome=outcome)
            return outcome
        stage, exc = failure
        detail = exc.detail() if isinstance(exc, DeployPipeError) else ErrorInfo.of(exc).message
        self.state.message = f"stage {stage.id} ({stage.type}) {self.state.records[stage.id].status}: {detail}"
        outcome = self._after_failure(stage)
        self._finalizers(failed=True, outcome=outcome)
        if isinstance(exc, KeyboardInterrupt):
            self.state.message += " (interrupted)"
        return outcome

    def _lock_lost(self, stage: StageSpec, reason: str) -> StageErrored:
        """Stop before ``stage``: without the release lock another run may be releasing at the same time."""
        error = StageErrored(f"the release lock was lost ({reason}); stopped before this stage",
                             where="release lock", hint="another run may now hold the lock; look at the service "
                             "and the database before releasing again")
        record = self.state.records[stage.id]
        record.status, record.error = "errored", ErrorInfo.of(error)
        self.journal.emit("stage_errored", stage=stage.id, attempts=0, duration_s=0.0,
                          error=record.error.model_dump(mode="json"), changed_production=False, outputs={})
        log.error("release_lock_lost", stage=stage.id, reason=reason)
        return error

    def _after_failure(self, stage: StageSpec) -> Outcome:
        changed = self.state.changed
        if not changed:
            return Outcome.BLOCKED
        if stage.on_failure == "stop":
            self.state.message += ("; production was changed by " + ", ".join(changed)
                                   + " and the pipeline says on_failure: stop, so nothing was rolled back")
            return Outcome.NEEDS_HUMAN
        held = self.guard.regain()
        if held is not None:
            self.state.message += (f"; production was changed by {', '.join(changed)} and NOT rolled back: the "
                                   f"release lock is lost and could not be taken back ({held}); roll back with "
                                   f"`invoke rollback --run {self.journal.run_id}` once no other release runs")
            return Outcome.NEEDS_HUMAN
        if self.compensate(list(changed)):
            return Outcome.ROLLED_BACK
        self.state.message += "; ROLLBACK NOT VERIFIED: " + self._unverified()
        return Outcome.NEEDS_HUMAN

    def undo(self, previous: Sequence[Mapping[str, Any]], undoing: str) -> Report:
        """``rollback --run``: compensate what run ``undoing`` changed and did not already undo."""
        self.state.started_at = self.now()
        self.journal.emit("run_started", pipeline=self.spec.name, path=str(self.loaded.path), kind="rollback",
                          undoing=undoing, digest=pipeline_digest(self.loaded))
        unfinished = self.restore(previous)
        take_over_interrupted(self.state, self.spec.stages, unfinished)  # killed past a point of no return
        undone = {e.get("stage") for e in previous if e.get("event") == "compensation_succeeded"}
        todo = [stage_id for stage_id in self.state.changed if stage_id not in undone]
        prior: dict[str, list[Mapping[str, Any]]] = {}
        for event in previous:
            prior.setdefault(str(event.get("stage")), []).append(event)
        for record in self.state.records.values():
            if record.status == "succeeded":
                record.status = "from_run"
        if not todo:
            self.state.message = (f"run {undoing} left nothing to undo (no stage changed production, or it was "
                                  "undone already)")
            return self.finish(Outcome.ROLLBACK_VERIFIED)
        if self.compensate(todo, prior):
            self.state.message = f"undid {', '.join(reversed(todo))} from run {undoing}"
            return self.finish(Outcome.ROLLBACK_VERIFIED)
        self.state.message = "ROLLBACK NOT VERIFIED: " + self._unverified()
        return self.finish(Outcome.ROLLBACK_FAILED)

    def _finalizers(self, *, failed: bool, outcome: Outcome) -> None:
        """Run the ``always`` / ``on_failure`` stages; they see the run's provisional outcome in ``ctx.run``."""
        for stage in self.spec.stages:
            if self.state.records[stage.id].status != "not_run" or stage.when not in ("always", "on_failure"):
                continue
            if stage.when == "on_failure" and not failed:
                continue
            self._run_stage(stage, outcome=outcome)

    def interrupted_before_start(self, signum: int) -> Report:
        """Signal ``signum`` while waiting for the release lock: journal it and end blocked; no stage ran."""
        self._interrupted(signum, "lock")
        return self.finish(Outcome.BLOCKED, message="interrupted before any stage ran (waiting for the release "
                                                    "lock); nothing changed")

    def finish(self, outcome: Outcome, message: str | None = None) -> Report:
        """Journal the end of the run and write its report; returns the report as written (secrets masked)."""
        if message is not None:
            self.state.message = message
        report = self.state.report(outcome, finished_at=self.now())
        self.journal.emit("run_finished", outcome=outcome.value, exit_code=report.exit_code, message=report.message)
        log.info("run_finished", outcome=outcome.value, exit_code=report.exit_code)
        return self.journal.write_report(report)
