"""Undo one service of a multi-service release and verify what serves afterwards by the service's kind.

``render.release``'s compensation runs this for every service it triggered (in parallel within a wave). The
rollback itself is ``rollbacks.undo_release`` (cancel a deploy still running, else roll back to the deploy that
was live before); then the service is watched again from the moment the rolled-back release went live, with the
same check as after the deploy. The summary says what the service went back to.
"""

from __future__ import annotations

from deploypipe.errors import DeployPipeError, StageFailed
from deploypipe.stages.base import Compensation
from deploypipe.stages.context import StageContext
from deploypipe.stages.render import DeployOutputs
from deploypipe.stages.rollbacks import short, undo_release
from deploypipe.stages.service_checks import CheckSpec, Released, verify_service
from deploypipe.stages.service_refs import service_target

__all__ = ["undo_service"]


def undo_service(ctx: StageContext, release: DeployOutputs, kind: str, check: CheckSpec, timeout_s: float,
                 poll_s: float, disable_auto_deploy: bool, max_poll_s: float = 15.0) -> Compensation:
    """Roll ``release``'s service back and verify it by ``kind``; a Compensation saying what it went back to."""
    key = release.service
    try:
        comp = undo_release(ctx, key, service_id=release.service_id, ours=release.deploy_id,
                            previous=release.previous_deploy_id, previous_commit=release.previous_commit,
                            timeout_s=timeout_s, poll_s=poll_s, disable_auto_deploy=disable_auto_deploy,
                            max_poll_s=max_poll_s)
    except DeployPipeError as exc:
        return Compensation(action="failed", verified=False, summary=f"{key}: {exc.message}",
                            details={"service": key, "from_deploy": release.deploy_id})
    if not comp.verified or comp.action != "rolled_back":
        return comp
    client = ctx.resources.render
    rollback_id = str(comp.details.get("rollback_deploy_id") or "")
    try:
        final = client.get_deploy(release.service_id, rollback_id)
        since = final.finished_at or ctx.now()
        target = service_target(ctx, key)
        service = client.get_service(release.service_id)
        judged = verify_service(ctx, Released(key=key, kind=kind, service_id=release.service_id,
                                              owner_id=service.owner_id, since=since,
                                              url=target.url or release.url, health_path=target.health_path),
                                check, phase="after_rollback")
    except (StageFailed, DeployPipeError) as exc:
        return Compensation(action="rolled_back_unverified", verified=False, details=comp.details,
                            deploys=comp.deploys, restored=comp.restored,
                            summary=f"{key}: back on {release.previous_deploy_id} (commit "
                                    f"{short(release.previous_commit)}) but NOT verified: {exc.message}")
    return Compensation(action="rolled_back", verified=True, details={**comp.details, "verified": judged},
                        deploys=comp.deploys, restored=comp.restored,
                        summary=f"{key}: back to {release.previous_deploy_id} (commit "
                                f"{short(release.previous_commit)}) as {rollback_id}, verified ({judged})")
