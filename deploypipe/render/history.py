"""Reading a service's deploy history: rollback candidates, the default rollback target, failure streaks."""

from __future__ import annotations

from typing import Any

from deploypipe.render.api import RenderApi, iso_time
from deploypipe.render.deploys import list_deploys
from deploypipe.render.models import Deploy, DeployStatus

__all__ = ["default_rollback_target", "failure_streak", "rollback_candidates", "rollback_targets"]


def _anchor(deploys: list[Deploy], live: Deploy) -> int:
    """Index (newest first) of the deploy that first shipped the live commit: a rollback's original deploy."""
    index = deploys.index(live)
    if live.trigger != "rollback" or not live.commit_id:
        return index
    for i in range(index + 1, len(deploys)):
        if deploys[i].commit_id == live.commit_id and deploys[i].trigger != "rollback":
            return i
    return index


def rollback_targets(deploys: list[Deploy]) -> tuple[Deploy | None, list[Deploy]]:
    """(live deploy, deploys one can roll back to, best first) from successful deploys listed newest first.

    A target is older than the deploy that first shipped the live commit (so
    rolling back twice goes further back instead of returning to the release
    that was just rolled back), has another commit than the live one, and is
    the newest deploy of its commit (rollbacks of the same commit are skipped).
    """
    live = next((d for d in deploys if d.status == DeployStatus.LIVE), None)
    older = deploys[_anchor(deploys, live) + 1:] if live is not None else list(deploys)
    seen = {live.commit_id or live.id} if live is not None else set()
    targets: list[Deploy] = []
    for deploy in older:
        key = deploy.commit_id or deploy.id
        if deploy.status in DeployStatus.SUCCESS and key not in seen:
            seen.add(key)
            targets.append(deploy)
    return live, targets


def _successful(client: RenderApi, service_id: str, limit: int) -> list[Deploy]:
    return list_deploys(client, service_id, status=sorted(DeployStatus.SUCCESS), max_items=max(50, limit * 3))


def rollback_candidates(client: RenderApi, service_id: str, limit: int = 10) -> list[dict[str, Any]]:
    """The live deploy (first, ``status: live``) then up to ``limit`` deploys to roll back to, best first.

    Each item: ``id, commit, message, created_at, status, trigger``. The first
    non-live item is what ``render.rollback`` picks when no ``to`` is given.
    """
    live, targets = rollback_targets(_successful(client, service_id, limit))
    return [{"id": d.id, "commit": d.commit_id, "message": d.commit_message,
             "created_at": iso_time(d.created_at) if d.created_at else None, "status": d.status, "trigger": d.trigger}
            for d in ([live] if live else []) + targets[:limit]]


def default_rollback_target(client: RenderApi, service_id: str) -> tuple[Deploy | None, Deploy | None]:
    """(live deploy, the deploy ``render.rollback`` returns to by default: the best rollback target)."""
    live, targets = rollback_targets(_successful(client, service_id, 10))
    return live, (targets[0] if targets else None)


def failure_streak(recent: list[Deploy]) -> list[Deploy]:
    """The failed deploys since the last successful one (newest first), ignoring ones still in progress."""
    streak: list[Deploy] = []
    for deploy in recent:
        if deploy.status in DeployStatus.SUCCESS:
            break
        if deploy.status in DeployStatus.FAILURE:
            streak.append(deploy)
    return streak
