"""``render.preflight``: read-only checks before a release; each service's live deploy recorded as its rollback
target."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from deploypipe.core.polling import poll
from deploypipe.errors import StageFailed
from deploypipe.render.api import iso_time
from deploypipe.render.history import failure_streak
from deploypipe.render.models import Deploy, DeployStatus
from deploypipe.stages.base import Outputs as BaseOutputs
from deploypipe.stages.base import Params as BaseParams
from deploypipe.stages.base import StageResult
from deploypipe.stages.context import StageContext
from deploypipe.stages.rollbacks import short
from deploypipe.stages.service_refs import git, repo_of, service_target

__all__ = ["RenderPreflight", "ServiceState"]


class ServiceState(BaseOutputs):
    """What preflight saw of one service: its live deploy (the rollback target) and recent history."""

    service_id: str
    live_deploy_id: str | None = None
    live_commit: str | None = None
    auto_deploy: bool | None = None
    url: str | None = None
    branch: str | None = None
    commit: str | None = None
    recent_failures: int = 0


class RenderPreflight:
    """Read-only checks before deploying; records each service's live deploy as its rollback target."""

    type: ClassVar[str] = "render.preflight"
    description: ClassVar[str] = ("Check each service is reachable with the API key, see what is live and how the last "
                                  "deploys ended, refuse while a deploy is in progress, check the commit is on the "
                                  "branch Render builds; record rollback targets.")
    touches_production: ClassVar[bool] = False

    class Params(BaseParams):
        services: list[str] | None = Field(None, description="Service target keys to check (default: all targets).")
        history: int = Field(5, ge=1, le=100, description="How many recent deploys to inspect per service.")
        wait_in_progress_s: float = Field(0.0, ge=0, description="Wait this long for a deploy in progress, else fail.")
        commit: str | None = Field(None, description="Commit that will be deployed (default: HEAD of repo_dir).")

    class Outputs(BaseOutputs):
        services: dict[str, ServiceState] = Field(default_factory=dict, description="Per service target key.")

    def plan(self, params: RenderPreflight.Params) -> str:
        which = ", ".join(params.services) if params.services else "every service target"
        return f"inspect {which}: live deploy, last {params.history} deploys, commit {params.commit or 'HEAD'}"

    def _recent(self, ctx: StageContext, key: str, service_id: str, params: RenderPreflight.Params) -> list[Deploy]:
        client = ctx.resources.render
        seen: list[list[Deploy]] = []

        def settled() -> list[Deploy] | None:
            recent = client.list_deploys(service_id, max_items=params.history)
            seen.append(recent)
            busy = next((d for d in recent if d.in_progress), None)
            if busy is None:
                return recent
            if len(seen) == 1 and params.wait_in_progress_s > 0:
                ctx.log.info("deploy_in_progress_waiting", service=key, deploy_id=busy.id, status=busy.status)
            return None

        recent = poll(settled, timeout_s=params.wait_in_progress_s, interval_s=2.0, growth=1.5, max_interval_s=15.0,
                      clock=ctx.clock, sleep=ctx.sleep)
        if recent is None:
            busy = next(d for d in seen[-1] if d.in_progress)
            raise StageFailed(f"{key}: deploy {busy.id} (commit {short(busy.commit_id)}) is {busy.status}; "
                              f"refusing to start another", where=ctx.where,
                              hint="wait for it to finish, or set wait_in_progress_s")
        return recent

    def _check_commit(self, ctx: StageContext, key: str, commit: str | None, branch: str | None,
                      warnings: list[str]) -> str | None:
        repo = repo_of(ctx, key)
        head = git(repo, "rev-parse", "--verify", "-q", f"{commit or 'HEAD'}^{{commit}}")
        if head.returncode != 0:
            if git(repo, "rev-parse", "--git-dir").returncode != 0:
                if commit is None:
                    warnings.append(f"{key}: {repo} is not a git checkout; could not check the commit to deploy")
                    return None
                raise StageFailed(f"{key}: {repo} is not a git checkout, so commit {commit} cannot be checked",
                                  where=ctx.where, hint=f"set targets.services.{key}.repo_dir")
            raise StageFailed(f"{key}: commit {commit or 'HEAD'} does not exist in {repo}", where=ctx.where,
                              hint="git fetch, or check the commit id")
        sha = head.stdout.strip()
        if not branch:
            return sha
        for ref in (f"origin/{branch}", branch):
            if git(repo, "rev-parse", "--verify", "-q", f"{ref}^{{commit}}").returncode == 0:
                if git(repo, "merge-base", "--is-ancestor", sha, ref).returncode != 0:
                    raise StageFailed(f"{key}: commit {short(sha)} is not on {ref}, the branch Render builds",
                                      where=ctx.where, hint=f"merge and push it to {branch} first")
                return sha
        warnings.append(f"{key}: branch {branch} (which Render builds) is not known in {repo}; could not check that "
                        f"{short(sha)} is on it (git fetch origin {branch})")
        return sha

    def run(self, ctx: StageContext, params: RenderPreflight.Params) -> StageResult[RenderPreflight.Outputs]:
        client = ctx.resources.render
        keys = params.services or list(ctx.resources.targets.services)
        warnings: list[str] = []
        found: dict[str, ServiceState] = {}
        for key in keys:
            target = service_target(ctx, key)
            service = client.find_service(target.id or target.name or key)
            recent = self._recent(ctx, key, service.id, params)
            live = next((d for d in recent if d.status == DeployStatus.LIVE), None) or client.live_deploy(service.id)
            failed = failure_streak(recent)
            if live is None:
                warnings.append(f"{key}: no deploy is live yet; a failed deploy cannot be rolled back")
            elif len(failed) >= 2:
                listed = ", ".join(f"{d.id} ({d.status})" for d in failed)
                since = live.finished_at or live.created_at
                warnings.append(f"{key}: production frozen on commit {short(live.commit_id)} since "
                                f"{iso_time(since) if since else '?'}; the last {len(failed)} deploys failed: {listed}")
            commit = self._check_commit(ctx, key, params.commit, service.branch, warnings)
            found[key] = ServiceState(service_id=service.id, live_deploy_id=live.id if live else None,
                                      live_commit=live.commit_id if live else None, auto_deploy=service.auto_deploy,
                                      url=service.url, branch=service.branch, commit=commit,
                                      recent_failures=len(failed))
        summary = "; ".join(f"{k}: " + (f"live {v.live_deploy_id} at {short(v.live_commit)}" if v.live_deploy_id
                                        else "nothing live yet") for k, v in found.items())
        return StageResult(outputs=self.Outputs(services=found), warnings=tuple(warnings), summary=summary)
