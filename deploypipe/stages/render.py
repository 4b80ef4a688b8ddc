"""``render.preflight``, ``render.deploy``, ``render.rollback``: the stages that touch the running service.

A deploy records the deploy that was live before it, so its compensation can
roll back to it; the trigger is journalled (``deploy_triggered``) before the
wait, so a resumed run waits on that deploy instead of triggering another.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any, ClassVar, Mapping

from pydantic import Field

from deploypipe.errors import StageErrored, StageFailed
from deploypipe.render.models import Deploy, DeployStatus
from deploypipe.render.waiting import DeployTimeout
from deploypipe.stages.base import Compensation, Params, StageContext, StageResult

__all__ = ["RenderDeploy", "RenderPreflight", "RenderRollback", "rollback_candidates"]


def _target(ctx: StageContext, key: str) -> Any:
    return ctx.resources.targets.services[key]


def _service(ctx: StageContext, key: str) -> Any:
    target = _target(ctx, key)
    return ctx.resources.render.find_service(target.id or target.name)


def _repo(ctx: StageContext, key: str) -> Path:
    repo_dir = _target(ctx, key).repo_dir
    return (ctx.resources.project_dir / repo_dir).resolve()


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)


def rollback_candidates(client: Any, service_id: str, limit: int = 10) -> list[dict[str, Any]]:
    """Recent deploys that can be rolled back to (they were live once), newest first."""
    deploys = client.list_deploys(service_id, status=sorted(DeployStatus.SUCCESS), max_items=limit)
    return [{"id": d.id, "commit": d.commit_id, "message": d.commit_message, "created_at": d.created_at,
             "status": d.status, "trigger": d.trigger} for d in deploys]


def _wait(ctx: StageContext, service_id: str, deploy: Deploy, *, timeout_s: float, cancel: bool, poll_s: float) -> Deploy:
    try:
        return ctx.resources.render.wait_for_deploy(service_id, deploy.id, timeout_s=timeout_s, poll_s=poll_s,
                                                    cancel_on_timeout=cancel)
    except DeployTimeout as exc:
        raise StageFailed(exc.message, where=f"stage {ctx.stage_id}",
                          hint="raise timeout_s, or look at the deploy in the Render dashboard") from None


def _roll_back(ctx: StageContext, key: str, service_id: str, to_deploy: str, *, timeout_s: float,
               disable_auto_deploy: bool, poll_s: float) -> tuple[Deploy, str]:
    """POST rollback, wait until live; returns (rollback deploy, note about auto-deploy)."""
    client = ctx.resources.render
    target = client.get_deploy(service_id, to_deploy)
    rollback = client.rollback(service_id, to_deploy)
    ctx.emit("rollback_triggered", service=key, deploy_id=rollback.id, to_deploy=to_deploy, commit=target.commit_id)
    final = _wait(ctx, service_id, rollback, timeout_s=timeout_s, cancel=False, poll_s=poll_s)
    note = ""
    if disable_auto_deploy and final.status == "live" and client.get_service(service_id).auto_deploy:
        client.update_service(service_id, auto_deploy=False)
        note = (f"auto-deploy turned off for {key} so the next push does not redeploy the bad commit; turn it back "
                f"on (dashboard, or PATCH /services/{service_id} autoDeploy=yes) once the fix is deployed")
        ctx.emit("auto_deploy_disabled", service=key, service_id=service_id)
    return final, note


class RenderPreflight:
    """Read-only checks before deploying; records each service's live deploy as its rollback target."""

    type: ClassVar[str] = "render.preflight"
    description: ClassVar[str] = ("Check each service is reachable, see what is live and how the last deploys ended, "
                                  "refuse while a deploy is in progress; record rollback targets.")
    touches_production: ClassVar[bool] = False

    class Params(Params):
        services: list[str] | None = Field(None, description="Service target keys (default: all).")
        history: int = Field(5, ge=1, le=100, description="How many recent deploys to inspect.")
        wait_in_progress_s: float = Field(0.0, ge=0, description="Wait this long for a deploy in progress, else fail.")
        commit: str | None = Field(None, description="Commit that will be deployed (default: HEAD of repo_dir).")

    def plan(self, params: "RenderPreflight.Params") -> str:
        return f"inspect {', '.join(params.services) if params.services else 'all services'} (last {params.history} deploys)"

    def _check_commit(self, ctx: StageContext, key: str, commit: str | None, branch: str | None, warnings: list[str]) -> str | None:
        repo = _repo(ctx, key)
        if commit is None:
            head = _git(repo, "rev-parse", "HEAD")
            if head.returncode != 0:
                warnings.append(f"{key}: {repo} is not a git checkout; cannot check the commit to deploy")
                return None
            commit = head.stdout.strip()
        if _git(repo, "cat-file", "-e", f"{commit}^{{commit}}").returncode != 0:
            raise StageFailed(f"{key}: commit {commit} does not exist in {repo}", where=f"stage {ctx.stage_id}")
        if branch:
            for ref in (f"origin/{branch}", branch):
                if _git(repo, "rev-parse", "--verify", "-q", ref).returncode == 0:
                    if _git(repo, "merge-base", "--is-ancestor", commit, ref).returncode != 0:
                        raise StageFailed(f"{key}: commit {commit[:12]} is not on branch {ref}, which Render builds",
                                          where=f"stage {ctx.stage_id}", hint=f"push it to {branch} first")
                    break
            else:
                warnings.append(f"{key}: branch {branch} is not known locally; could not check {commit[:12]} is on it")
        return commit

    def run(self, ctx: StageContext, params: "RenderPreflight.Params") -> StageResult:
        client = ctx.resources.render
        keys = params.services or list(ctx.resources.targets.services)
        warnings: list[str] = []
        found: dict[str, Any] = {}
        for key in keys:
            service = _service(ctx, key)
            recent = client.list_deploys(service.id, max_items=params.history)
            deadline = ctx.clock() + params.wait_in_progress_s
            while any(d.status in DeployStatus.IN_PROGRESS for d in recent):
                busy = next(d for d in recent if d.status in DeployStatus.IN_PROGRESS)
                if ctx.clock() >= deadline:
                    raise StageFailed(f"{key}: deploy {busy.id} is {busy.status}; refusing to start another",
                                      where=f"stage {ctx.stage_id}", hint="wait for it, or set wait_in_progress_s")
                ctx.sleep(min(5.0, max(0.1, deadline - ctx.clock())))
                recent = client.list_deploys(service.id, max_items=params.history)
            live = next((d for d in recent if d.status == "live"), None) or client.live_deploy(service.id)
            failed = []
            for deploy in recent:
                if deploy.status in DeployStatus.FAILURE:
                    failed.append(deploy)
                elif deploy.status in DeployStatus.SUCCESS:
                    break
            if live is None:
                warnings.append(f"{key}: nothing is live yet (first deploy); a failure cannot be rolled back")
            if len(failed) >= 2 and live is not None:
                since = live.finished_at or live.created_at
                listed = ", ".join(f"{d.id} ({d.status})" for d in failed)
                warnings.append(f"{key}: production frozen on commit {str(live.commit_id)[:12]} since {since}; "
                                f"the last {len(failed)} deploys failed: {listed}")
            commit = self._check_commit(ctx, key, params.commit, service.branch, warnings)
            found[key] = {"service_id": service.id, "live_deploy_id": live.id if live else None,
                          "live_commit": live.commit_id if live else None, "auto_deploy": service.auto_deploy,
                          "url": service.url, "recent_failures": len(failed), "commit": commit}
        return StageResult(outputs={"services": found}, warnings=tuple(warnings),
                           summary="; ".join(f"{k}: live {str(v['live_commit'])[:12]}" for k, v in found.items()))


class RenderDeploy:
    """Deploy a commit and wait for Render's verdict; compensation rolls back to what was live before."""

    type: ClassVar[str] = "render.deploy"
    description: ClassVar[str] = "Trigger a deploy of a commit through the Render API and wait until it is live."
    touches_production: ClassVar[bool] = True

    class Params(Params):
        service: str = Field(..., description="Service target key.")
        commit: str | None = Field(None, description="Commit SHA (default: HEAD of the target's repo_dir).")
        allow_dirty: bool = Field(False, description="Deploy HEAD even when the working tree has changes.")
        clear_cache: bool = Field(False, description="Clear Render's build cache first.")
        timeout_s: float = Field(900.0, gt=0, description="How long to wait for a terminal status.")
        poll_s: float = Field(2.0, gt=0, description="First polling interval (it grows to 15 s).")
        cancel_on_timeout: bool = Field(True, description="Cancel the deploy when the wait times out.")
        disable_auto_deploy_on_rollback: bool = Field(
            True, description="On rollback, turn auto-deploy off so the next push does not redeploy the bad commit.")

    def plan(self, params: "RenderDeploy.Params") -> str:
        return f"deploy {params.service} at {params.commit or 'HEAD'} and wait up to {params.timeout_s:g}s"

    def _commit(self, ctx: StageContext, params: "RenderDeploy.Params") -> str:
        if params.commit:
            return params.commit
        repo = _repo(ctx, params.service)
        head = _git(repo, "rev-parse", "HEAD")
        if head.returncode != 0:
            raise StageErrored(f"cannot read HEAD of {repo}: {head.stderr.strip()}", where=f"stage {ctx.stage_id}",
                               hint="set commit, or targets.services.<key>.repo_dir to a git checkout")
        dirty = _git(repo, "status", "--porcelain", "--untracked-files=no").stdout.strip()
        if dirty and not params.allow_dirty:
            raise StageFailed(f"{repo} has uncommitted changes; HEAD is not what you are looking at",
                              where=f"stage {ctx.stage_id}", hint="commit them, or set allow_dirty: true")
        return head.stdout.strip()

    def run(self, ctx: StageContext, params: "RenderDeploy.Params") -> StageResult:
        client = ctx.resources.render
        preflight = (ctx.output_of("render.preflight") or {}).get("services", {}).get(params.service, {})
        service = _service(ctx, params.service)
        triggered = next((e for e in ctx.prior_events if e.get("event") == "deploy_triggered"), None)
        if triggered is not None:
            deploy = client.get_deploy(service.id, triggered["deploy_id"])
            previous_id, previous_commit, commit = triggered.get("previous_deploy_id"), triggered.get("previous_commit"), triggered["commit"]
            ctx.log.info("deploy_resumed", deploy_id=deploy.id)
        else:
            commit = self._commit(ctx, params)
            if preflight.get("live_deploy_id"):
                previous_id, previous_commit = preflight["live_deploy_id"], preflight.get("live_commit")
            else:
                live = client.live_deploy(service.id)
                previous_id, previous_commit = (live.id, live.commit_id) if live else (None, None)
            deploy = client.trigger_deploy(service.id, commit_id=commit, clear_cache=params.clear_cache)
            ctx.emit("deploy_triggered", service=params.service, service_id=service.id, deploy_id=deploy.id,
                     commit=commit, previous_deploy_id=previous_id, previous_commit=previous_commit)
        outputs = {"service": params.service, "service_id": service.id, "deploy_id": deploy.id, "commit": commit,
                   "previous_deploy_id": previous_id, "previous_commit": previous_commit, "url": service.url}
        final = _wait(ctx, service.id, deploy, timeout_s=params.timeout_s, cancel=params.cancel_on_timeout, poll_s=params.poll_s)
        outputs["status"] = final.status
        if final.status != "live":
            reason = client.deploy_failure_reason(service.id, deploy.id)
            raise StageFailed(f"deploy {deploy.id} of {params.service} ended {final.status}: {reason}; "
                              f"{str(previous_commit)[:12] if previous_commit else 'the previous release'} keeps serving",
                              where=f"stage {ctx.stage_id}", outputs=outputs, production_changed=False)
        return StageResult(outputs=outputs, changed_production=True, deploys=(final.record(params.service),),
                           summary=f"{deploy.id} live at {commit[:12]}")

    def compensate(self, ctx: StageContext, params: "RenderDeploy.Params", outputs: Mapping[str, Any]) -> Compensation:
        service_id, previous = outputs.get("service_id"), outputs.get("previous_deploy_id")
        details = {"service": params.service, "from_deploy": outputs.get("deploy_id"), "to_deploy": previous,
                   "commit": outputs.get("previous_commit")}
        if not previous:
            return Compensation(action="cannot_undo", verified=False, details=details,
                                summary=f"{params.service}: no earlier deploy to roll back to; "
                                        f"{outputs.get('deploy_id')} ({str(outputs.get('commit'))[:12]}) is live")
        try:
            final, note = _roll_back(ctx, params.service, service_id, previous, timeout_s=params.timeout_s,
                                     disable_auto_deploy=params.disable_auto_deploy_on_rollback, poll_s=params.poll_s)
        except Exception as exc:  # say exactly what is live now
            live = ctx.resources.render.live_deploy(service_id)
            now = f"{live.id} at {str(live.commit_id)[:12]}" if live else "nothing"
            return Compensation(action="failed", verified=False, details=details,
                                summary=f"{params.service}: rollback to {previous} failed ({exc}); live now: {now}")
        details["rollback_deploy_id"] = final.id
        verified = final.status == "live"
        summary = (f"{params.service}: rolled back to {previous} ({str(outputs.get('previous_commit'))[:12]}) as {final.id}"
                   if verified else f"{params.service}: rollback deploy {final.id} ended {final.status}")
        return Compensation(action="rolled_back", verified=verified, summary=summary + (f"; {note}" if note else ""),
                            details={**details, "auto_deploy_note": note}, deploys=(final.record(params.service),))


class RenderRollback:
    """Roll a service back to an earlier deploy (default: the previous successful one) and wait until live."""

    type: ClassVar[str] = "render.rollback"
    description: ClassVar[str] = "Roll a service back to an earlier deploy through the Render API and wait until live."
    touches_production: ClassVar[bool] = True

    class Params(Params):
        service: str = Field(..., description="Service target key.")
        to: str | None = Field(None, description="Deploy id to return to (default: previous successful deploy).")
        timeout_s: float = Field(900.0, gt=0)
        poll_s: float = Field(2.0, gt=0)
        disable_auto_deploy: bool = Field(True, description="Turn auto-deploy off after rolling back.")

    def plan(self, params: "RenderRollback.Params") -> str:
        return f"roll {params.service} back to {params.to or 'the previous successful deploy'}"

    def run(self, ctx: StageContext, params: "RenderRollback.Params") -> StageResult:
        client = ctx.resources.render
        service = _service(ctx, params.service)
        live = client.live_deploy(service.id)
        target_id = params.to
        if target_id is None:
            candidates = [c for c in rollback_candidates(client, service.id, 20) if c["status"] != "live"
                          and (live is None or c["commit"] != live.commit_id)]
            if not candidates:
                raise StageFailed(f"{params.service}: no earlier successful deploy to roll back to",
                                  where=f"stage {ctx.stage_id}", hint="pass --to DEPLOY_ID")
            target_id = candidates[0]["id"]
        final, note = _roll_back(ctx, params.service, service.id, target_id, timeout_s=params.timeout_s,
                                 disable_auto_deploy=params.disable_auto_deploy, poll_s=params.poll_s)
        target = client.get_deploy(service.id, target_id)
        outputs = {"service": params.service, "service_id": service.id, "deploy_id": final.id, "to_deploy": target_id,
                   "commit": target.commit_id, "previous_deploy_id": live.id if live else None,
                   "previous_commit": live.commit_id if live else None, "url": service.url, "auto_deploy_note": note}
        if final.status != "live":
            now = client.live_deploy(service.id)
            raise StageFailed(f"rollback deploy {final.id} ended {final.status}; live now: "
                              f"{now.id + ' at ' + str(now.commit_id)[:12] if now else 'nothing'}",
                              where=f"stage {ctx.stage_id}", production_changed=True, outputs=outputs)
        return StageResult(outputs=outputs, changed_production=True, deploys=(final.record(params.service),),
                           warnings=(note,) if note else (), summary=f"{params.service} back on {str(target.commit_id)[:12]}")

    def compensate(self, ctx: StageContext, params: "RenderRollback.Params", outputs: Mapping[str, Any]) -> Compensation:
        """Undoing a manual rollback means going forward again to what was live before it."""
        return RenderDeploy().compensate(ctx, RenderDeploy.Params(service=params.service, timeout_s=params.timeout_s,
                                                                  poll_s=params.poll_s), outputs)
