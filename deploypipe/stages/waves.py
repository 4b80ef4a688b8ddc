"""``render.release``: deploy several services as one release, in waves, each verified by its kind.

The waves come from the pipeline (``waves``, else the targets' ``depends_on``), else from the Blueprint's
``fromService`` references (``spec/release_order.py``), else all services are one wave; a resumed run keeps the
waves its journal names. Every service of a wave is triggered at once (the at-most-once trigger, on one Render
client whose rate-limit budget the threads share, Retry-After honoured), waited on in parallel and verified by its
kind's check (``service_checks.py``). A wave starts when the one before it is live and verified. ``deploy_triggered`` is
journalled per service before any wait and carries every release triggered so far, so a resumed run waits on
those deploys instead of triggering again and ``rollback --run`` undoes all of them. The compensation rolls every
changed service back in reverse wave order, in parallel within a wave, and verifies each by its kind again.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, ClassVar, Literal, Mapping, TypeVar

from pydantic import Field

from deploypipe.errors import DeployPipeError, StageFailed
from deploypipe.render.instances import DEFAULT_ERROR_PATTERN
from deploypipe.render.models import DeployStatus
from deploypipe.spec.release_order import order_of
from deploypipe.stages.base import Compensation, DeployRecord, StageResult
from deploypipe.stages.base import Outputs as BaseOutputs
from deploypipe.stages.base import Params as BaseParams
from deploypipe.stages.context import StageContext
from deploypipe.stages.diagnostics import explain_failure
from deploypipe.stages.release_undo import undo_service
from deploypipe.stages.render import DeployOutputs, trigger_release
from deploypipe.stages.rollbacks import short
from deploypipe.stages.service_checks import KIND_OF_TYPE, CheckSpec, Released, verify_service
from deploypipe.stages.service_refs import service_target

__all__ = ["ReleaseOutputs", "RenderRelease", "in_parallel"]

T = TypeVar("T")


def in_parallel(keys: list[str], work: Callable[[str], T]) -> dict[str, T]:
    """``work(key)`` for every key at once (one thread each); results by key, in ``keys``' order."""
    if len(keys) <= 1:
        return {key: work(key) for key in keys}
    with ThreadPoolExecutor(max_workers=len(keys), thread_name_prefix="release") as pool:
        futures = {key: pool.submit(work, key) for key in keys}
        return {key: futures[key].result() for key in keys}


class ReleaseOutputs(BaseOutputs):
    """A multi-service release: its waves, each service's deploy (and what was live before), how each was judged."""

    waves: list[list[str]] = Field(default_factory=list, description="Service keys per wave, in release order.")
    waves_from: str = Field("", description="Where the wave order came from: the pipeline (waves, depends_on), the "
                                            "Blueprint's fromService references, or neither (one wave).")
    releases: dict[str, DeployOutputs] = Field(default_factory=dict, description="Each triggered service's deploy.")
    kinds: dict[str, str] = Field(default_factory=dict, description="Each service's kind as Render reports it.")
    verified: dict[str, str] = Field(default_factory=dict, description="Service -> how it was verified.")
    failed: dict[str, str] = Field(default_factory=dict, description="Service -> why it failed.")

    def parts(self) -> tuple[DeployOutputs, ...]:
        """Each service's deploy: later stages (verify.health, verify.traffic) find their service's release here."""
        return tuple(self.releases.values())


class RenderRelease:
    """Deploy services in waves, each wave triggered at once and verified per kind; roll back all on failure."""

    type: ClassVar[str] = "render.release"
    description: ClassVar[str] = ("Deploy several services as one release, in waves (declared, from the targets' "
                                  "depends_on, or from the Blueprint's fromService references): each wave triggered "
                                  "at once, waited on in parallel and verified by kind; a failure rolls back every "
                                  "changed service, each verified again.")
    touches_production: ClassVar[bool] = True
    point_of_no_return: ClassVar[str] = "deploy_triggered"
    Outputs = ReleaseOutputs

    class Params(BaseParams):
        services: list[str] | None = Field(None, description="Service target keys (default: every service target).")
        waves: list[list[str]] | None = Field(
            None, description="Explicit waves in order (default: from the targets' depends_on, else from the "
                              "Blueprint's fromService references; neither: one wave).")
        blueprint: str | None = Field(
            None, description="Blueprint whose fromService references order the waves when the pipeline does not "
                              "(default: local.blueprint for the local default, else render.yaml).")
        commit: str | None = Field(None, description="Commit to deploy (default: HEAD of each target's repo_dir).")
        allow_dirty: bool = Field(False, description="Deploy HEAD even when tracked files have uncommitted changes.")
        clear_cache: bool = Field(False, description="Clear Render's build cache for these deploys.")
        timeout_s: float = Field(900.0, gt=0, description="How long to wait for each deploy to be live.")
        poll_s: float = Field(2.0, gt=0, description="First polling interval of each wait; it grows to max_poll_s.")
        max_poll_s: float = Field(5.0, gt=0, description="Longest polling interval: the next wave starts at most this "
                                                         "late (6 services polling every 5 s use 72 of Render's 400 "
                                                         "GETs a minute).")
        observe_s: float = Field(30.0, ge=0, description="Observation window after each service is live (and "
                                                         "after each rollback).")
        interval_s: float = Field(2.0, gt=0, description="Time between looks in the observation window.")
        successes: int = Field(3, ge=1, description="Web services: consecutive healthy answers first.")
        healthy_within_s: float = Field(120.0, gt=0, description="Web services: time allowed to become healthy.")
        failure_threshold: int = Field(3, ge=1, description="Web services: failed checks in a row that fail it.")
        error_pattern: str = Field(DEFAULT_ERROR_PATTERN, description="App log lines (regex) that fail a service "
                                                                      "without a URL during its window.")
        run_cron: list[str] = Field(default_factory=list, description="Cron job keys: once live (and after a "
                                    "rollback), trigger one run and wait for it to end successful.")
        cron_run_timeout_s: float = Field(600.0, gt=0, description="How long a run_cron run may take to end.")
        disable_auto_deploy_on_rollback: bool = Field(True, description="Turn auto-deploy off when rolling back.")

    def plan(self, params: RenderRelease.Params) -> str:
        if params.waves:
            order = " then ".join("[" + ", ".join(w) + "]" for w in params.waves)
        else:
            order = ", ".join(params.services) if params.services else "every service target"
        return (f"release {order} at {params.commit or 'HEAD'}: each wave triggered at once, each service verified "
                f"by its kind for {params.observe_s:g}s")

    def outputs_from_event(self, event: Mapping[str, Any]) -> ReleaseOutputs:
        return ReleaseOutputs.model_validate({k: v for k, v in event.items() if k in ReleaseOutputs.model_fields})

    @staticmethod
    def _check(params: RenderRelease.Params) -> CheckSpec:
        return CheckSpec(observe_s=params.observe_s, interval_s=params.interval_s, successes=params.successes,
                         healthy_within_s=params.healthy_within_s, failure_threshold=params.failure_threshold,
                         error_pattern=params.error_pattern, run_cron=frozenset(params.run_cron),
                         cron_run_timeout_s=params.cron_run_timeout_s)

    # -- one service ---------------------------------------------------------------------
    def _trigger(self, ctx: StageContext, params: RenderRelease.Params, key: str, record: Callable[..., None]
                 ) -> DeployOutputs:
        outputs, service = trigger_release(ctx, key, commit=params.commit, allow_dirty=params.allow_dirty,
                                           clear_cache=params.clear_cache)
        record(key, outputs, KIND_OF_TYPE.get(service.type, service_target(ctx, key).kind))
        return outputs

    def _finish(self, ctx: StageContext, params: RenderRelease.Params, outputs: DeployOutputs, kind: str,
                stopped: Callable[[], bool]) -> tuple[DeployOutputs, str | None, str]:
        """Wait for the deploy and verify the service (until ``stopped()``): (outputs, problem or None, summary)."""
        client, key = ctx.resources.render, outputs.service
        assert outputs.deploy_id is not None
        final = client.wait_for_deploy(
            outputs.service_id, outputs.deploy_id, timeout_s=params.timeout_s, poll_s=params.poll_s,
            max_poll_s=max(params.poll_s, params.max_poll_s), cancel_on_timeout=True,
            on_status=lambda d: ctx.emit("deploy_status", service=key, deploy_id=d.id, status=d.status))
        outputs = outputs.model_copy(update={"status": final.status})
        owner_id = client.get_service(outputs.service_id).owner_id
        if final.status in DeployStatus.FAILURE:
            log_kind: Literal["build", "app"] = "app" if final.status == DeployStatus.UPDATE_FAILED else "build"
            line = explain_failure(ctx, service=key, service_id=outputs.service_id, owner_id=owner_id,
                                   deploy_id=final.id, kind=log_kind, since=outputs.created_at or ctx.now())
            reason = client.deploy_failure_reason(outputs.service_id, final.id)
            return outputs, (f"{key}: deploy {final.id} (commit {short(outputs.commit)}) ended {final.status}: "
                             f"{reason}" + (f"; {log_kind} log: {line}" if line else "")), ""
        live_at = final.finished_at or ctx.now()
        outputs = outputs.model_copy(update={"live_at": live_at})
        ctx.emit("deploy_live", service=key, deploy_id=final.id, commit=outputs.commit, status=final.status,
                 live_at=live_at)
        target = service_target(ctx, key)
        released = Released(key=key, kind=kind, service_id=outputs.service_id, owner_id=owner_id, since=live_at,
                            url=target.url or outputs.url, health_path=target.health_path)
        try:
            return outputs, None, verify_service(ctx, released, self._check(params), stopped=stopped)
        except StageFailed as exc:
            explain_failure(ctx, service=key, service_id=outputs.service_id, owner_id=owner_id, deploy_id=final.id,
                            kind="app", since=outputs.created_at or live_at)
            return outputs, exc.message, ""

    # -- the release ---------------------------------------------------------------------
    @staticmethod
    def _order(ctx: StageContext, params: RenderRelease.Params) -> tuple[list[list[str]], str]:
        """(waves, where their order came from): the interrupted run's when resuming, else worked out now."""
        for event in reversed(ctx.prior_events):
            if event.get("event") == RenderRelease.point_of_no_return and event.get("waves"):
                return event["waves"], str(event.get("waves_from") or "the interrupted run's journal")
        order = order_of(params, ctx.resources.targets, ctx.resources.project_dir)
        return order.waves, order.reason

    def run(self, ctx: StageContext, params: RenderRelease.Params) -> StageResult[ReleaseOutputs]:
        waves, waves_from = self._order(ctx, params)
        lock, failing = threading.Lock(), threading.Event()  # one failed service ends the others' watch
        state: dict[str, Any] = {"waves": waves, "waves_from": waves_from, "releases": {}, "kinds": {},
                                 "verified": {}, "failed": {}}
        for event in ctx.prior_events:
            if event.get("event") == self.point_of_no_return:
                state["releases"].update(event.get("releases") or {})
                state["kinds"].update(event.get("kinds") or {})

        def record(key: str, outputs: DeployOutputs, kind: str) -> None:
            with lock:
                state["releases"][key] = outputs.model_dump(mode="json")
                state["kinds"][key] = kind
                ctx.emit(self.point_of_no_return, **outputs.model_dump(mode="json"), kind=kind, waves=waves,
                         waves_from=waves_from, releases=dict(state["releases"]), kinds=dict(state["kinds"]))

        def current() -> ReleaseOutputs:
            with lock:
                return ReleaseOutputs.model_validate(state)

        def trigger(key: str) -> DeployOutputs | str:
            """The service's deploy (triggered now, or by the interrupted run), or why it could not be triggered."""
            try:
                if key in state["releases"]:
                    outputs = DeployOutputs.model_validate(state["releases"][key])
                    ctx.emit("deploy_resumed", service=key, deploy_id=outputs.deploy_id, commit=outputs.commit)
                    return outputs
                return self._trigger(ctx, params, key, record)
            except DeployPipeError as exc:
                return f"{key}: {exc.message}"

        def finish(key: str) -> tuple[DeployOutputs, str | None, str]:
            outputs = DeployOutputs.model_validate(state["releases"][key])
            try:
                done, problem, summary = self._finish(ctx, params, outputs, state["kinds"].get(key, "web"),
                                                      failing.is_set)
            except DeployPipeError as exc:
                failing.set()
                return outputs, f"{key}: {exc.message}", ""
            if problem:
                failing.set()
            with lock:
                state["releases"][key] = done.model_dump(mode="json")
            return done, problem, summary

        deploys: list[DeployRecord] = []
        for number, wave in enumerate(waves, 1):
            ctx.emit("wave_started", wave=number, of=len(waves), services=wave, waves_from=waves_from)
            try:
                triggered = in_parallel(wave, trigger)  # every deploy of the wave exists before any wait
                refused = {k: v for k, v in triggered.items() if isinstance(v, str)}
                results = {} if refused else in_parallel(wave, finish)
            except KeyboardInterrupt as exc:
                raise StageFailed(f"interrupted during wave {number} of {len(waves)} ({', '.join(wave)})",
                                  where=ctx.where, outputs=current(), production_changed=bool(state["releases"]),
                                  hint="the release's services are rolled back") from exc
            state["failed"].update(refused)
            for key, (done, problem, summary) in results.items():
                if done.deploy_id:
                    deploys.append(DeployRecord(service=key, deploy_id=done.deploy_id, commit=done.commit,
                                                status=done.status))
                state["failed" if problem else "verified"][key] = problem or summary
            failed = {k: state["failed"][k] for k in wave if k in state["failed"]}
            ctx.emit("wave_finished", wave=number, of=len(waves), services=wave, failed=failed)
            if failed:
                raise StageFailed(f"wave {number} of {len(waves)}: " + "; ".join(failed.values()), where=ctx.where,
                                  outputs=current(), production_changed=bool(state["releases"]),
                                  hint="every service this release changed is rolled back (see the rollback)")
        outputs = current()
        summary = " then ".join("[" + ", ".join(f"{k} {short(outputs.releases[k].commit)}" for k in wave) + "]"
                                for wave in waves)
        return StageResult(outputs=outputs, changed_production=True, deploys=tuple(deploys),
                           summary=f"live and verified: {summary}")

    def compensate(self, ctx: StageContext, params: RenderRelease.Params, outputs: ReleaseOutputs) -> Compensation:
        """Every released service back, last wave first, in parallel within a wave, each verified by its kind."""
        items: dict[str, Compensation] = {}
        waves = outputs.waves or [list(outputs.releases)]
        for wave in reversed(waves):
            keys = [k for k in wave if k in outputs.releases]
            items.update(in_parallel(keys, lambda key: undo_service(
                ctx, outputs.releases[key], outputs.kinds.get(key, "web"), self._check(params), params.timeout_s,
                params.poll_s, params.disable_auto_deploy_on_rollback, params.max_poll_s)))
        verified = all(c.verified for c in items.values())
        deploys = tuple(d for c in items.values() for d in c.deploys)
        return Compensation(action="rolled_back" if verified else "failed", verified=verified,
                            summary="; ".join(c.summary for c in items.values()) or "nothing was triggered",
                            details={k: dict(c.details) for k, c in items.items()}, deploys=deploys)

