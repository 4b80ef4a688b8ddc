"""``render.deploy`` and ``render.rollback``: the stages that change a Render service (``render.preflight`` looks
first, deploypipe.stages.render_preflight).

A deploy records what was live before it (its rollback target) and journals
``deploy_triggered`` *before* waiting, so a resumed run waits on that deploy
instead of triggering another, and ``rollback --run`` can undo a run killed
while waiting. Its compensation rolls back to the previous deploy, waits until
it is live and, by default, turns auto-deploy off.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Mapping

from pydantic import Field

from deploypipe.errors import DeployPipeError, RollbackFailed, StageErrored, StageFailed, TransientError
from deploypipe.render.history import default_rollback_target
from deploypipe.render.models import Deploy, DeployStatus, Service
from deploypipe.render.waiting import DeployTimeout
from deploypipe.stages.base import Compensation, ServiceRelease, StageResult
from deploypipe.stages.base import Params as BaseParams
from deploypipe.stages.context import StageContext
from deploypipe.stages.diagnostics import explain_failure
from deploypipe.stages.render_preflight import RenderPreflight
from deploypipe.stages.rollbacks import deploy_record, live_now, roll_back, short, undo_release, wait_for
from deploypipe.stages.service_refs import commit_to_deploy, refuse_a_concurrent_release, service_target

__all__ = ["DeployOutputs", "RenderDeploy", "RenderRollback", "RollbackOutputs", "trigger_release"]


class DeployOutputs(ServiceRelease):
    """A deploy of a service: what was live before it (where a rollback returns) and how it ended."""

    status: str | None = None


def trigger_release(ctx: StageContext, key: str, *, commit: str | None, allow_dirty: bool, clear_cache: bool
                    ) -> tuple[DeployOutputs, Service]:
    """Trigger ``key``'s deploy at most once, across processes too; (its outputs, the service).

    ``deploy_requested`` (the commit and what was live) is journalled before the POST. A resumed run that finds it
    sends the same request with its ``requested_at``, so Render's deploys since are looked up first: a process
    killed between the POST and journalling the deploy never creates a second one (``RenderClient.trigger_deploy``).
    """
    client = ctx.resources.render
    target = service_target(ctx, key)
    service = client.find_service(target.id or target.name or key)
    asked = ctx.prior("deploy_requested", service=key)
    requested_at: float | None = None
    if asked is None:
        commit_id = commit_to_deploy(ctx, key, commit, allow_dirty)
        refuse_a_concurrent_release(ctx, key, service.id)
        preflight = ctx.latest(RenderPreflight.Outputs, where=lambda o: key in o.services)
        before = preflight.services[key] if preflight else None
        previous_id: str | None
        previous_commit: str | None
        if before is not None and before.service_id == service.id and before.live_deploy_id:
            previous_id, previous_commit = before.live_deploy_id, before.live_commit
        else:
            live = client.live_deploy(service.id)
            previous_id, previous_commit = (live.id, live.commit_id) if live else (None, None)
        ctx.emit("deploy_requested", service=key, service_id=service.id, commit=commit_id,
                 previous_deploy_id=previous_id, previous_commit=previous_commit, requested_at=client.wall_clock())
    else:  # an interrupted process asked for this deploy: same commit, same "before", and Render is asked first
        commit_id, previous_id, previous_commit = asked["commit"], asked["previous_deploy_id"], asked["previous_commit"]
        requested_at = float(asked["requested_at"])
    deploy = client.trigger_deploy(service.id, commit_id=commit_id, clear_cache=clear_cache,
                                   requested_at=requested_at)
    outputs = DeployOutputs(service=key, service_id=service.id, deploy_id=deploy.id, commit=commit_id,
                            previous_deploy_id=previous_id, previous_commit=previous_commit, url=service.url,
                            created_at=deploy.created_at or ctx.now())
    return outputs, service


class RenderDeploy:
    """Deploy a commit and wait for Render's verdict; compensation rolls back to what was live before."""

    type: ClassVar[str] = "render.deploy"
    description: ClassVar[str] = "Trigger a deploy of a commit through the Render API and wait until it is live."
    touches_production: ClassVar[bool] = True
    point_of_no_return: ClassVar[str] = "deploy_triggered"
    Outputs = DeployOutputs

    class Params(BaseParams):
        service: str = Field(..., description="Service target key.")
        commit: str | None = Field(None, description="Commit SHA to deploy (default: HEAD of the target's repo_dir).")
        allow_dirty: bool = Field(False, description="Deploy HEAD even when tracked files have uncommitted changes.")
        clear_cache: bool = Field(False, description="Clear Render's build cache for this deploy.")
        timeout_s: float = Field(900.0, gt=0, description="How long to wait for the deploy to be live.")
        poll_s: float = Field(2.0, gt=0, description="First polling interval; it grows to 15 s.")
        cancel_on_timeout: bool = Field(True, description="Cancel the deploy when the wait times out.")
        disable_auto_deploy_on_rollback: bool = Field(
            True,
            description="When compensating, turn auto-deploy off so the next push does not redeploy the bad commit.")

    def plan(self, params: RenderDeploy.Params) -> str:
        return f"deploy {params.service} at {params.commit or 'HEAD'} and wait up to {params.timeout_s:g}s until live"

    def outputs_from_event(self, event: Mapping[str, Any]) -> DeployOutputs:
        return DeployOutputs.model_validate({k: v for k, v in event.items() if k in DeployOutputs.model_fields})


    def _trigger(self, ctx: StageContext, params: RenderDeploy.Params) -> DeployOutputs:
        """Trigger the deploy (journalled before any wait), or take over the one an interrupted run triggered."""
        key = params.service
        prior = [e for e in ctx.prior_events if e.get("event") == self.point_of_no_return]
        if prior:
            outputs = self.outputs_from_event(prior[-1])
            ctx.emit("deploy_resumed", service=key, deploy_id=outputs.deploy_id, commit=outputs.commit)
            return outputs
        outputs, _ = trigger_release(ctx, key, commit=params.commit, allow_dirty=params.allow_dirty,
                                     clear_cache=params.clear_cache)
        ctx.emit(self.point_of_no_return, **outputs.model_dump(mode="json"))
        return outputs

    def run(self, ctx: StageContext, params: RenderDeploy.Params) -> StageResult[DeployOutputs]:
        client, key = ctx.resources.render, params.service
        outputs = self._trigger(ctx, params)
        assert outputs.deploy_id is not None
        try:
            final = wait_for(ctx, key, outputs.service_id, outputs.deploy_id, timeout_s=params.timeout_s,
                             poll_s=params.poll_s, cancel=params.cancel_on_timeout)
        except DeployTimeout as exc:
            keeps = f"{short(outputs.previous_commit)} keeps serving" if exc.cancelled else "it may still go live"
            raise StageFailed(f"{exc.message}; {keeps}", where=ctx.where, hint=exc.hint,
                              outputs=outputs.model_copy(update={"status": "timeout"}),
                              production_changed=not exc.cancelled) from exc
        except DeployPipeError as exc:
            if not isinstance(exc, TransientError):
                raise
            # Never let the runner retry run(): it would trigger a second deploy. Treat the state as changed.
            raise StageErrored(f"lost contact with Render while waiting for deploy {outputs.deploy_id} "
                               f"({exc.message}); it may still go live", where=ctx.where, outputs=outputs,
                               production_changed=True, hint="the rollback returns to the previous deploy") from exc
        outputs = outputs.model_copy(update={"status": final.status})
        if final.status in DeployStatus.FAILURE:
            reason = client.deploy_failure_reason(outputs.service_id, final.id)
            ctx.emit("deploy_failed", service=key, deploy_id=final.id, status=final.status, reason=reason)
            logged = self._explain(ctx, outputs, final)
            keeps = f"commit {short(outputs.previous_commit)}" if outputs.previous_deploy_id else "the previous release"
            raise StageFailed(f"deploy {final.id} of {key} (commit {short(outputs.commit)}) ended {final.status}: "
                              f"{reason}{logged}; {keeps} keeps serving", where=ctx.where, outputs=outputs,
                              hint="the last log lines are in the run report (diagnostics); this deploy never went "
                                   "live, so it needs no rollback of its own")
        warnings: tuple[str, ...] = ()
        if final.status == DeployStatus.DEACTIVATED:
            warnings = (f"{key}: deploy {final.id} went live but a newer deploy has already replaced it",)
        outputs = outputs.model_copy(update={"live_at": final.finished_at or ctx.now()})
        ctx.emit("deploy_live", service=key, deploy_id=final.id, commit=outputs.commit, status=final.status,
                 live_at=outputs.live_at)
        return StageResult(outputs=outputs, changed_production=True, deploys=(deploy_record(key, final),),
                           warnings=warnings, summary=f"{key}: {final.id} live at commit {short(outputs.commit)}")

    @staticmethod
    def _explain(ctx: StageContext, outputs: DeployOutputs, final: Deploy) -> str:
        """Render's logs for a failed deploy into the report; '' or '; <kind> log: <headline>' for the message."""
        if final.status == DeployStatus.CANCELED:
            return ""
        kind: Literal["build", "app"] = "app" if final.status == DeployStatus.UPDATE_FAILED else "build"
        try:
            owner_id = ctx.resources.render.get_service(outputs.service_id).owner_id
        except DeployPipeError:
            owner_id = ""
        line = explain_failure(ctx, service=outputs.service, service_id=outputs.service_id, owner_id=owner_id,
                               deploy_id=final.id, kind=kind, since=outputs.created_at or ctx.now())
        return f"; {kind} log: {line}" if line else ""

    def compensate(self, ctx: StageContext, params: RenderDeploy.Params, outputs: DeployOutputs) -> Compensation:
        return undo_release(ctx, params.service, service_id=outputs.service_id, ours=outputs.deploy_id,
                            previous=outputs.previous_deploy_id, previous_commit=outputs.previous_commit,
                            timeout_s=params.timeout_s, poll_s=params.poll_s,
                            disable_auto_deploy=params.disable_auto_deploy_on_rollback)


class RollbackOutputs(ServiceRelease):
    """A rollback of a service: the deploy it returned to, and what was live before (where undoing it goes)."""

    to_deploy: str | None = None
    auto_deploy_note: str = ""


class RenderRollback:
    """Roll a service back to an earlier deploy (default: the previous successful one) and wait until live."""

    type: ClassVar[str] = "render.rollback"
    description: ClassVar[str] = "Roll a service back to an earlier deploy through the Render API and wait until live."
    touches_production: ClassVar[bool] = True
    Outputs = RollbackOutputs

    class Params(BaseParams):
        service: str = Field(..., description="Service target key.")
        to: str | None = Field(None, description="Deploy id to return to (default: the previous successful deploy).")
        timeout_s: float = Field(900.0, gt=0, description="How long to wait for the rollback to be live.")
        poll_s: float = Field(2.0, gt=0, description="First polling interval; it grows to 15 s.")
        disable_auto_deploy: bool = Field(True, description="Turn auto-deploy off after rolling back.")

    def plan(self, params: RenderRollback.Params) -> str:
        return f"roll {params.service} back to {params.to or 'the previous successful deploy'} and wait until live"

    def run(self, ctx: StageContext, params: RenderRollback.Params) -> StageResult[RollbackOutputs]:
        client, key = ctx.resources.render, params.service
        target = service_target(ctx, key)
        service = client.find_service(target.id or target.name or key)
        planned = [e for e in ctx.prior_events if e.get("event") == "rollback_planned"]
        triggered = [e for e in ctx.prior_events if e.get("event") == "rollback_triggered"]
        live, default = default_rollback_target(client, service.id)
        if triggered:  # resumed: wait on the rollback the interrupted run started
            to_id, resume = triggered[-1]["to_deploy"], triggered[-1]["deploy_id"]
            live_id, live_commit = (planned[-1].get("previous_deploy_id"), planned[-1].get("previous_commit")) \
                if planned else (None, None)
            ctx.emit("rollback_resumed", service=key, deploy_id=resume, to_deploy=to_id)
        else:
            to_id, resume = params.to or (default.id if default else None), None
            live_id, live_commit = (live.id, live.commit_id) if live else (None, None)
            if to_id is None:
                raise StageFailed(f"{key}: no earlier successful deploy to roll back to (live: "
                                  f"{live_now(ctx, service.id)})", where=ctx.where, hint="pass a deploy id with --to")
            ctx.emit("rollback_planned", service=key, to_deploy=to_id, previous_deploy_id=live_id,
                     previous_commit=live_commit)
        to = client.get_deploy(service.id, to_id)
        outputs = RollbackOutputs(service=key, service_id=service.id, deploy_id=resume, to_deploy=to_id,
                                  commit=to.commit_id, previous_deploy_id=live_id, previous_commit=live_commit,
                                  url=service.url)
        try:
            final, note = roll_back(ctx, key, service.id, to_id, timeout_s=params.timeout_s, poll_s=params.poll_s,
                                    disable_auto_deploy=params.disable_auto_deploy, resume_deploy_id=resume)
        except RollbackFailed as exc:
            raise StageFailed(exc.message, where=exc.where, hint=exc.hint, production_changed=exc.pending,
                              outputs=outputs.model_copy(update={"deploy_id": exc.deploy_id})) from exc
        outputs = outputs.model_copy(update={"deploy_id": final.id, "auto_deploy_note": note})
        return StageResult(outputs=outputs, changed_production=True, deploys=(deploy_record(key, final),),
                           warnings=(note,) if note else (),
                           summary=f"{key}: back on commit {short(to.commit_id)} ({to_id}) as {final.id}")

    def compensate(self, ctx: StageContext, params: RenderRollback.Params, outputs: RollbackOutputs) -> Compensation:
        """Undoing a rollback goes forward again to the deploy that was live before it."""
        return undo_release(ctx, params.service, service_id=outputs.service_id, ours=None,
                            previous=outputs.previous_deploy_id, previous_commit=outputs.previous_commit,
                            timeout_s=params.timeout_s, poll_s=params.poll_s, disable_auto_deploy=False)
