"""``render.preflight``, ``render.deploy``, ``render.rollback``: the stages that look at and change Render services.

A deploy records what was live before it (its rollback target) and journals
``deploy_triggered`` *before* waiting, so a resumed run waits on that deploy
instead of triggering another. Its compensation rolls back to the previous
deploy, waits until it is live and, by default, turns auto-deploy off (an API
rollback does not, unlike the dashboard's).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any, ClassVar, Mapping

from pydantic import Field

from deploypipe.errors import DeployPipeError, RollbackFailed, StageErrored, StageFailed, TransientError
from deploypipe.render.history import default_rollback_target, failure_streak, rollback_candidates
from deploypipe.render.models import Deploy, DeployStatus
from deploypipe.render.waiting import DeployTimeout
from deploypipe.stages.base import Compensation, Params, StageContext, StageResult

__all__ = ["RenderDeploy", "RenderPreflight", "RenderRollback", "rollback_candidates"]


def _short(commit: str | None) -> str:
    return commit[:12] if commit else "?"


def _target(ctx: StageContext, key: str) -> Any:
    services = ctx.resources.targets.services
    if key not in services:
        raise StageErrored(f"no service target '{key}'", where=f"stage {ctx.stage_id}",
                           hint=f"one of: {', '.join(sorted(services)) or 'none declared'}")
    return services[key]


def _repo(ctx: StageContext, key: str) -> Path:
    return (Path(ctx.resources.project_dir) / _target(ctx, key).repo_dir).resolve()


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=False)


def _live_now(ctx: StageContext, service_id: str) -> str:
    """What serves right now, in words, for error messages."""
    try:
        live = ctx.resources.render.live_deploy(service_id)
    except DeployPipeError as exc:
        return f"unknown (could not ask Render: {exc.message})"
    return f"{live.id} at commit {_short(live.commit_id)}" if live else "no deploy is live"


def _wait(ctx: StageContext, key: str, service_id: str, deploy_id: str, *, timeout_s: float, poll_s: float,
          cancel: bool) -> Deploy:
    return ctx.resources.render.wait_for_deploy(
        service_id, deploy_id, timeout_s=timeout_s, poll_s=poll_s, cancel_on_timeout=cancel,
        on_status=lambda d: ctx.emit("deploy_status", service=key, deploy_id=d.id, status=d.status))


def roll_back(ctx: StageContext, key: str, service_id: str, to_deploy: str, *, timeout_s: float, poll_s: float,
              disable_auto_deploy: bool, resume_deploy_id: str | None = None) -> tuple[Deploy, str]:
    """POST rollback to ``to_deploy`` (or resume waiting on one), wait until live; (final deploy, auto-deploy note).

    Raises RollbackFailed naming what is live now when the rollback does not go live.
    """
    client = ctx.resources.render
    if resume_deploy_id is None:
        rollback = client.rollback(service_id, to_deploy)
        ctx.emit("rollback_triggered", service=key, service_id=service_id, deploy_id=rollback.id, to_deploy=to_deploy,
                 commit=rollback.commit_id)
        resume_deploy_id = rollback.id
    try:
        final = _wait(ctx, key, service_id, resume_deploy_id, timeout_s=timeout_s, poll_s=poll_s, cancel=False)
    except DeployPipeError as exc:
        raise RollbackFailed(f"rollback {resume_deploy_id} of {key} to {to_deploy} did not finish ({exc.message}); "
                             f"live now: {_live_now(ctx, service_id)}", where=f"stage {ctx.stage_id}", pending=True,
                             deploy_id=resume_deploy_id,
                             hint="look at the service in the Render dashboard and roll back by hand") from exc
    if final.status != DeployStatus.LIVE:
        raise RollbackFailed(f"rollback {final.id} of {key} to {to_deploy} ended {final.status}: "
                             f"{client.deploy_failure_reason(service_id, final.id)}; live now: "
                             f"{_live_now(ctx, service_id)}", where=f"stage {ctx.stage_id}", pending=False,
                             deploy_id=final.id, hint="the build of the target may have expired; pick another deploy (invoke rollback)")
    note = ""
    if disable_auto_deploy and client.get_service(service_id).auto_deploy:
        client.update_service(service_id, auto_deploy=False)
        note = (f"auto-deploy turned off for {key} so the next push does not redeploy the bad commit; turn it back on "
                f"(Render dashboard > Settings > Auto-Deploy, or PATCH /services/{service_id} autoDeploy=yes) "
                f"when the fix is deployed")
        ctx.emit("auto_deploy_disabled", service=key, service_id=service_id)
    return final, note


def undo_deploy(ctx: StageContext, key: str, outputs: Mapping[str, Any], *, timeout_s: float, poll_s: float,
                disable_auto_deploy: bool) -> Compensation:
    """Return ``key`` to ``outputs['previous_deploy_id']``: cancel our deploy if still running, else roll back."""
    client = ctx.resources.render
    service_id, ours = outputs.get("service_id"), outputs.get("deploy_id")
    previous, previous_commit = outputs.get("previous_deploy_id"), outputs.get("previous_commit")
    details: dict[str, Any] = {"service": key, "from_deploy": ours, "to_deploy": previous, "commit": previous_commit}
    if not service_id or not previous:
        return Compensation(action="cannot_undo", verified=False, details=details,
                            summary=f"{key}: no earlier deploy to roll back to; live now: "
                                    f"{_live_now(ctx, service_id) if service_id else 'unknown'}")
    if ours:
        current, cancelled = client.get_deploy(service_id, ours), False
        if current.in_progress:  # e.g. the wait timed out without cancelling: stop it before it goes live
            client.cancel_deploy(service_id, ours)
            cancelled = True
            current = _wait(ctx, key, service_id, ours, timeout_s=timeout_s, poll_s=poll_s, cancel=False)
        if current.status in DeployStatus.FAILURE:  # it never went live: the previous release still serves
            live = client.live_deploy(service_id)
            verified = live is not None and live.id == previous
            return Compensation(action="canceled" if cancelled else "nothing_to_do", verified=verified,
                                details={**details, "status": current.status},
                                summary=f"{key}: deploy {ours} ended {current.status} before going live; "
                                        f"live now: {_live_now(ctx, service_id)}")
    try:
        final, note = roll_back(ctx, key, service_id, previous, timeout_s=timeout_s, poll_s=poll_s,
                                disable_auto_deploy=disable_auto_deploy)
    except RollbackFailed:
        raise
    except DeployPipeError as exc:  # say exactly what is live now, as far as Render can tell us
        raise RollbackFailed(f"{key}: rollback to {previous} failed: {exc.message}; "
                             f"live now: {_live_now(ctx, service_id)}", where=f"stage {ctx.stage_id}") from None
    live = client.live_deploy(service_id)
    verified = live is not None and live.id == final.id and (previous_commit is None or live.commit_id == previous_commit)
    summary = f"{key}: rolled back to {previous} (commit {_short(previous_commit)}) as {final.id}"
    return Compensation(action="rolled_back", verified=verified, summary=summary + (f"; {note}" if note else ""),
                        details={**details, "rollback_deploy_id": final.id, "auto_deploy_note": note},
                        deploys=(final.record(key),))


class RenderPreflight:
    """Read-only checks before deploying; records each service's live deploy as its rollback target."""

    type: ClassVar[str] = "render.preflight"
    description: ClassVar[str] = ("Check each service is reachable with the API key, see what is live and how the last "
                                  "deploys ended, refuse while a deploy is in progress, check the commit is on the "
                                  "branch Render builds; record rollback targets.")
    touches_production: ClassVar[bool] = False

    class Params(Params):
        services: list[str] | None = Field(None, description="Service target keys to check (default: all targets).")
        history: int = Field(5, ge=1, le=100, description="How many recent deploys to inspect per service.")
        wait_in_progress_s: float = Field(0.0, ge=0, description="Wait this long for a deploy in progress, else fail.")
        commit: str | None = Field(None, description="Commit that will be deployed (default: HEAD of repo_dir).")

    def plan(self, params: "RenderPreflight.Params") -> str:
        which = ", ".join(params.services) if params.services else "every service target"
        return f"inspect {which}: live deploy, last {params.history} deploys, commit {params.commit or 'HEAD'}"

    def _recent(self, ctx: StageContext, key: str, service_id: str, params: "RenderPreflight.Params") -> list[Deploy]:
        client = ctx.resources.render
        deadline = ctx.clock() + params.wait_in_progress_s
        interval = 2.0
        while True:
            recent = client.list_deploys(service_id, max_items=params.history)
            busy = next((d for d in recent if d.in_progress), None)
            if busy is None:
                return recent
            left = deadline - ctx.clock()
            if left <= 0:
                raise StageFailed(f"{key}: deploy {busy.id} (commit {_short(busy.commit_id)}) is {busy.status}; "
                                  f"refusing to start another", where=f"stage {ctx.stage_id}",
                                  hint="wait for it to finish, or set wait_in_progress_s")
            ctx.log.info("deploy_in_progress_waiting", service=key, deploy_id=busy.id, status=busy.status)
            ctx.sleep(min(interval, left))
            interval = min(15.0, interval * 1.5)

    def _check_commit(self, ctx: StageContext, key: str, commit: str | None, branch: str | None,
                      warnings: list[str]) -> str | None:
        repo = _repo(ctx, key)
        head = _git(repo, "rev-parse", "--verify", "-q", f"{commit or 'HEAD'}^{{commit}}")
        if head.returncode != 0:
            if _git(repo, "rev-parse", "--git-dir").returncode != 0:
                if commit is None:
                    warnings.append(f"{key}: {repo} is not a git checkout; could not check the commit to deploy")
                    return None
                raise StageFailed(f"{key}: {repo} is not a git checkout, so commit {commit} cannot be checked",
                                  where=f"stage {ctx.stage_id}", hint=f"set targets.services.{key}.repo_dir")
            raise StageFailed(f"{key}: commit {commit or 'HEAD'} does not exist in {repo}", where=f"stage {ctx.stage_id}",
                              hint="git fetch, or check the commit id")
        sha = head.stdout.strip()
        if not branch:
            return sha
        for ref in (f"origin/{branch}", branch):
            if _git(repo, "rev-parse", "--verify", "-q", f"{ref}^{{commit}}").returncode == 0:
                if _git(repo, "merge-base", "--is-ancestor", sha, ref).returncode != 0:
                    raise StageFailed(f"{key}: commit {_short(sha)} is not on {ref}, the branch Render builds",
                                      where=f"stage {ctx.stage_id}", hint=f"merge and push it to {branch} first")
                return sha
        warnings.append(f"{key}: branch {branch} (which Render builds) is not known in {repo}; could not check that "
                        f"{_short(sha)} is on it (git fetch origin {branch})")
        return sha

    def run(self, ctx: StageContext, params: "RenderPreflight.Params") -> StageResult:
        client = ctx.resources.render
        keys = params.services or list(ctx.resources.targets.services)
        warnings: list[str] = []
        found: dict[str, Any] = {}
        for key in keys:
            target = _target(ctx, key)
            service = client.find_service(target.id or target.name)
            recent = self._recent(ctx, key, service.id, params)
            live = next((d for d in recent if d.status == DeployStatus.LIVE), None) or client.live_deploy(service.id)
            failed = failure_streak(recent)
            if live is None:
                warnings.append(f"{key}: no deploy is live yet; a failed deploy cannot be rolled back")
            elif len(failed) >= 2:
                listed = ", ".join(f"{d.id} ({d.status})" for d in failed)
                warnings.append(f"{key}: production frozen on commit {_short(live.commit_id)} since "
                                f"{live.finished_at or live.created_at}; the last {len(failed)} deploys failed: {listed}")
            commit = self._check_commit(ctx, key, params.commit, service.branch, warnings)
            found[key] = {"service_id": service.id, "live_deploy_id": live.id if live else None,
                          "live_commit": live.commit_id if live else None, "auto_deploy": service.auto_deploy,
                          "url": service.url, "branch": service.branch, "commit": commit,
                          "recent_failures": len(failed)}
        summary = "; ".join(f"{k}: live {v['live_deploy_id'] or 'none'} at {_short(v['live_commit'])}"
                            for k, v in found.items())
        return StageResult(outputs={"services": found}, warnings=tuple(warnings), summary=summary)


class RenderDeploy:
    """Deploy a commit and wait for Render's verdict; compensation rolls back to what was live before."""

    type: ClassVar[str] = "render.deploy"
    description: ClassVar[str] = "Trigger a deploy of a commit through the Render API and wait until it is live."
    touches_production: ClassVar[bool] = True
    #: a run killed after this event may have changed production; its fields are the outputs compensate() needs
    compensation_event: ClassVar[str] = "deploy_triggered"

    class Params(Params):
        service: str = Field(..., description="Service target key.")
        commit: str | None = Field(None, description="Commit SHA to deploy (default: HEAD of the target's repo_dir).")
        allow_dirty: bool = Field(False, description="Deploy HEAD even when tracked files have uncommitted changes.")
        clear_cache: bool = Field(False, description="Clear Render's build cache for this deploy.")
        timeout_s: float = Field(900.0, gt=0, description="How long to wait for the deploy to be live.")
        poll_s: float = Field(2.0, gt=0, description="First polling interval; it grows to 15 s.")
        cancel_on_timeout: bool = Field(True, description="Cancel the deploy when the wait times out.")
        disable_auto_deploy_on_rollback: bool = Field(
            True, description="When compensating, turn auto-deploy off so the next push does not redeploy the bad commit.")

    def plan(self, params: "RenderDeploy.Params") -> str:
        return f"deploy {params.service} at {params.commit or 'HEAD'} and wait up to {params.timeout_s:g}s until live"

    def _commit(self, ctx: StageContext, params: "RenderDeploy.Params") -> str:
        if params.commit:
            return params.commit
        repo = _repo(ctx, params.service)
        head = _git(repo, "rev-parse", "HEAD")
        if head.returncode != 0:
            raise StageErrored(f"cannot read HEAD of {repo}: {head.stderr.strip()}", where=f"stage {ctx.stage_id}",
                               hint=f"set commit, or targets.services.{params.service}.repo_dir to a git checkout")
        dirty = [line for line in _git(repo, "status", "--porcelain", "--untracked-files=no").stdout.splitlines() if line]
        if dirty and not params.allow_dirty:
            files = ", ".join(line[3:] for line in dirty[:5])
            raise StageFailed(f"{repo} has uncommitted changes ({files}); Render would build HEAD without them",
                              where=f"stage {ctx.stage_id}", hint="commit and push them, or set allow_dirty: true")
        return head.stdout.strip()

    def run(self, ctx: StageContext, params: "RenderDeploy.Params") -> StageResult:
        client, key = ctx.resources.render, params.service
        target = _target(ctx, key)
        prior = [e for e in ctx.prior_events if e.get("event") == "deploy_triggered"]
        if prior:
            event = prior[-1]
            service_id, deploy_id, commit = event["service_id"], event["deploy_id"], event.get("commit")
            previous_id, previous_commit = event.get("previous_deploy_id"), event.get("previous_commit")
            url = event.get("url")
            ctx.emit("deploy_resumed", service=key, deploy_id=deploy_id, commit=commit)
        else:
            service = client.find_service(target.id or target.name)
            service_id, url = service.id, service.url
            commit = self._commit(ctx, params)
            before = ((ctx.output_of("render.preflight") or {}).get("services") or {}).get(key) or {}
            if before.get("service_id") == service_id and before.get("live_deploy_id"):
                previous_id, previous_commit = before["live_deploy_id"], before.get("live_commit")
            else:
                live = client.live_deploy(service_id)
                previous_id, previous_commit = (live.id, live.commit_id) if live else (None, None)
            deploy_id = client.trigger_deploy(service_id, commit_id=commit, clear_cache=params.clear_cache).id
            ctx.emit("deploy_triggered", service=key, service_id=service_id, deploy_id=deploy_id, commit=commit,
                     previous_deploy_id=previous_id, previous_commit=previous_commit, url=url)
        outputs = {"service": key, "service_id": service_id, "deploy_id": deploy_id, "commit": commit,
                   "previous_deploy_id": previous_id, "previous_commit": previous_commit, "url": url}
        where = f"stage {ctx.stage_id}"
        try:
            final = _wait(ctx, key, service_id, deploy_id, timeout_s=params.timeout_s, poll_s=params.poll_s,
                          cancel=params.cancel_on_timeout)
        except DeployTimeout as exc:
            cancelled = bool(exc.attrs.get("cancelled"))
            keeps = f"{_short(previous_commit)} keeps serving" if cancelled else "it may still go live"
            raise StageFailed(f"{exc.message}; {keeps}", where=where, hint=exc.hint, outputs=outputs,
                              production_changed=not cancelled, status="timeout") from exc
        except DeployPipeError as exc:
            if not isinstance(exc, TransientError):
                raise
            # Never let the runner retry run(): it would trigger a second deploy. Treat the state as changed.
            raise StageErrored(f"lost contact with Render while waiting for deploy {deploy_id} ({exc.message}); "
                               f"it may still go live", where=where, outputs=outputs, production_changed=True,
                               hint="the rollback returns to the previous deploy") from exc
        outputs["status"] = final.status
        if final.status in DeployStatus.FAILURE:
            reason = client.deploy_failure_reason(service_id, deploy_id)
            ctx.emit("deploy_failed", service=key, deploy_id=deploy_id, status=final.status, reason=reason)
            raise StageFailed(f"deploy {deploy_id} of {key} (commit {_short(commit)}) ended {final.status}: {reason}; "
                              f"{'commit ' + _short(previous_commit) if previous_id else 'the previous release'} "
                              f"keeps serving", where=where, outputs=outputs, production_changed=False,
                              status=final.status, reason=reason,
                              hint="read the deploy's logs in the Render dashboard; nothing to roll back")
        warnings = ()
        if final.status == DeployStatus.DEACTIVATED:
            warnings = (f"{key}: deploy {deploy_id} went live but a newer deploy has already replaced it",)
        ctx.emit("deploy_live", service=key, deploy_id=deploy_id, commit=commit, status=final.status)
        return StageResult(outputs=outputs, changed_production=True, deploys=(final.record(key),), warnings=warnings,
                           summary=f"{key}: {deploy_id} live at commit {_short(commit)}")

    def compensate(self, ctx: StageContext, params: "RenderDeploy.Params", outputs: Mapping[str, Any]) -> Compensation:
        return undo_deploy(ctx, params.service, outputs, timeout_s=params.timeout_s, poll_s=params.poll_s,
                           disable_auto_deploy=params.disable_auto_deploy_on_rollback)


class RenderRollback:
    """Roll a service back to an earlier deploy (default: the previous successful one) and wait until live."""

    type: ClassVar[str] = "render.rollback"
    description: ClassVar[str] = "Roll a service back to an earlier deploy through the Render API and wait until live."
    touches_production: ClassVar[bool] = True

    class Params(Params):
        service: str = Field(..., description="Service target key.")
        to: str | None = Field(None, description="Deploy id to return to (default: the previous successful deploy).")
        timeout_s: float = Field(900.0, gt=0, description="How long to wait for the rollback to be live.")
        poll_s: float = Field(2.0, gt=0, description="First polling interval; it grows to 15 s.")
        disable_auto_deploy: bool = Field(True, description="Turn auto-deploy off after rolling back.")

    def plan(self, params: "RenderRollback.Params") -> str:
        return f"roll {params.service} back to {params.to or 'the previous successful deploy'} and wait until live"

    def run(self, ctx: StageContext, params: "RenderRollback.Params") -> StageResult:
        client, key = ctx.resources.render, params.service
        target = _target(ctx, key)
        service = client.find_service(target.id or target.name)
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
                                  f"{_live_now(ctx, service.id)})", where=f"stage {ctx.stage_id}",
                                  hint="pass a deploy id with --to")
            ctx.emit("rollback_planned", service=key, to_deploy=to_id, previous_deploy_id=live_id,
                     previous_commit=live_commit)
        to = client.get_deploy(service.id, to_id)
        outputs = {"service": key, "service_id": service.id, "deploy_id": resume, "to_deploy": to_id,
                   "commit": to.commit_id, "previous_deploy_id": live_id, "previous_commit": live_commit,
                   "url": service.url}
        try:
            final, note = roll_back(ctx, key, service.id, to_id, timeout_s=params.timeout_s, poll_s=params.poll_s,
                                    disable_auto_deploy=params.disable_auto_deploy, resume_deploy_id=resume)
        except RollbackFailed as exc:
            pending = bool(exc.attrs.get("pending"))
            raise StageFailed(exc.message, where=exc.where, hint=exc.hint, production_changed=pending,
                              outputs={**outputs, "deploy_id": exc.attrs.get("deploy_id")}) from exc
        outputs.update(deploy_id=final.id, auto_deploy_note=note)
        return StageResult(outputs=outputs, changed_production=True, deploys=(final.record(key),),
                           warnings=(note,) if note else (),
                           summary=f"{key}: back on commit {_short(to.commit_id)} ({to_id}) as {final.id}")

    def compensate(self, ctx: StageContext, params: "RenderRollback.Params", outputs: Mapping[str, Any]) -> Compensation:
        """Undoing a rollback goes forward again to the deploy that was live before it."""
        return undo_deploy(ctx, params.service, {**outputs, "deploy_id": None}, timeout_s=params.timeout_s,
                           poll_s=params.poll_s, disable_auto_deploy=False)
