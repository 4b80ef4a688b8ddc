"""A release's service targets and their checkouts: which target, which commit to deploy, and whether Render is
free for a release of it (shared by ``render.preflight``, ``render.deploy`` and ``render.release``)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from deploypipe.errors import StageErrored, StageFailed
from deploypipe.render.api import iso_time
from deploypipe.spec.targets import ServiceTarget
from deploypipe.stages.context import StageContext
from deploypipe.stages.rollbacks import short

__all__ = ["commit_to_deploy", "git", "refuse_a_concurrent_release", "repo_of", "service_target"]


def service_target(ctx: StageContext, key: str) -> ServiceTarget:
    """The pipeline's service target ``key`` (StageErrored naming the known ones)."""
    services = ctx.resources.targets.services
    if key not in services:
        raise StageErrored(f"no service target '{key}'", where=ctx.where,
                           hint=f"one of: {', '.join(sorted(services)) or 'none declared'}")
    return services[key]


def repo_of(ctx: StageContext, key: str) -> Path:
    """The target's checkout (``repo_dir``, relative to the project)."""
    return (Path(ctx.resources.project_dir) / service_target(ctx, key).repo_dir).resolve()


def git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``git -C repo args``, its output captured, never raising."""
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=False)


def commit_to_deploy(ctx: StageContext, key: str, commit: str | None, allow_dirty: bool) -> str:
    """``commit``, else HEAD of the target's repo_dir (refused when tracked files are changed, unless allowed)."""
    if commit:
        return commit
    repo = repo_of(ctx, key)
    head = git(repo, "rev-parse", "HEAD")
    if head.returncode != 0:
        raise StageErrored(f"cannot read HEAD of {repo}: {head.stderr.strip()}", where=ctx.where,
                           hint=f"set commit, or targets.services.{key}.repo_dir to a git checkout")
    status = git(repo, "status", "--porcelain", "--untracked-files=no").stdout
    dirty = [line for line in status.splitlines() if line]
    if dirty and not allow_dirty:
        files = ", ".join(line[3:] for line in dirty[:5])
        raise StageFailed(f"{repo} has uncommitted changes ({files}); Render would build HEAD without them",
                          where=ctx.where, hint="commit and push them, or set allow_dirty: true")
    return head.stdout.strip()


def refuse_a_concurrent_release(ctx: StageContext, key: str, service_id: str) -> None:
    """Render's side of one-release-at-a-time: no deploy in progress, none created since this run started.

    This holds even without a database target (and so without the release lock), for releases made by
    anyone: another machine, the dashboard, an auto-deploy. A deploy created between this check and the
    trigger is not seen; the release lock (a database target) closes that window for deploypipe runs.
    """
    recent = ctx.resources.render.list_deploys(service_id, max_items=10)
    busy = next((d for d in recent if d.in_progress), None)
    if busy is not None:
        raise StageFailed(f"{key}: deploy {busy.id} (commit {short(busy.commit_id)}, trigger "
                          f"{busy.trigger or '?'}) is {busy.status}; another release is under way",
                          where=ctx.where, hint="wait for it to finish, then release again")
    started = ctx.run.started_at
    newer = [(d, d.created_at) for d in recent if d.created_at and d.created_at >= started]
    if newer:
        other, created = newer[0]
        raise StageFailed(f"{key}: deploy {other.id} (commit {short(other.commit_id)}, trigger "
                          f"{other.trigger or '?'}) was created at {iso_time(created)}, after this run started "
                          f"at {started.isoformat(timespec='seconds')}; someone else is releasing",
                          where=ctx.where, hint="look at the service's deploys, then release again")
