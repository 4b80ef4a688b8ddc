"""Returning a Render service to an earlier deploy: roll back, wait until live, say what is live when it fails.

Shared by ``render.deploy``'s compensation, ``render.rollback`` and its own
compensation. An API rollback does not turn auto-deploy off (the dashboard's
does), so by default it is turned off here, with instructions to turn it on.
"""

from __future__ import annotations

from typing import Any

from deploypipe.errors import DeployPipeError, RollbackFailed
from deploypipe.render.models import Deploy, DeployStatus
from deploypipe.stages.base import Compensation, DeployRecord, Restored
from deploypipe.stages.context import StageContext

__all__ = ["deploy_record", "live_now", "roll_back", "short", "undo_release", "wait_for"]


def short(commit: str | None) -> str:
    return commit[:12] if commit else "?"


def deploy_record(service: str, deploy: Deploy) -> DeployRecord:
    return DeployRecord(service=service, deploy_id=deploy.id, commit=deploy.commit_id, status=deploy.status)


def live_now(ctx: StageContext, service_id: str) -> str:
    """What serves right now, in words, for error messages."""
    try:
        live = ctx.resources.render.live_deploy(service_id)
    except DeployPipeError as exc:
        return f"unknown (could not ask Render: {exc.message})"
    return f"{live.id} at commit {short(live.commit_id)}" if live else "no deploy is live"


def wait_for(ctx: StageContext, key: str, service_id: str, deploy_id: str, *, timeout_s: float, poll_s: float,
             cancel: bool, max_poll_s: float = 15.0) -> Deploy:
    """Wait until the deploy is terminal, journalling each status it passes through."""
    return ctx.resources.render.wait_for_deploy(
        service_id, deploy_id, timeout_s=timeout_s, poll_s=poll_s, max_poll_s=max(poll_s, max_poll_s),
        cancel_on_timeout=cancel,
        on_status=lambda d: ctx.emit("deploy_status", service=key, deploy_id=d.id, status=d.status))


def roll_back(ctx: StageContext, key: str, service_id: str, to_deploy: str, *, timeout_s: float, poll_s: float,
              disable_auto_deploy: bool, resume_deploy_id: str | None = None,
              max_poll_s: float = 15.0) -> tuple[Deploy, str]:
    """POST rollback to ``to_deploy`` (or resume waiting on one), wait until live; (final deploy, auto-deploy note).

    Raises RollbackFailed naming what is live now when the rollback does not go live.
    """
    client = ctx.resources.render
    if resume_deploy_id is None:  # an earlier process of this run may have triggered it already: wait on that one
        triggered = ctx.prior("rollback_triggered", service=key, to_deploy=to_deploy)
        resume_deploy_id = triggered.get("deploy_id") if triggered is not None else None
        if resume_deploy_id is not None:
            ctx.emit("rollback_resumed", service=key, deploy_id=resume_deploy_id, to_deploy=to_deploy)
    if resume_deploy_id is None:
        asked = ctx.prior("rollback_requested", service=key, to_deploy=to_deploy)
        requested_at = float(asked["requested_at"]) if asked is not None else None
        if asked is None:  # journalled before the POST: a resumed run looks for the rollback before asking again
            ctx.emit("rollback_requested", service=key, service_id=service_id, to_deploy=to_deploy,
                     requested_at=client.wall_clock())
        try:
            rollback = client.rollback(service_id, to_deploy, requested_at=requested_at)
        except DeployPipeError as exc:  # refused (e.g. the target's build expired) or unanswered
            raise RollbackFailed(f"Render did not roll {key} back to {to_deploy}: {exc.message}; live now: "
                                 f"{live_now(ctx, service_id)}", where=ctx.where,
                                 hint="pick another deploy (invoke rollback shows them), or redeploy a good commit "
                                      "(invoke deploy)") from None
        ctx.emit("rollback_triggered", service=key, service_id=service_id, deploy_id=rollback.id, to_deploy=to_deploy,
                 commit=rollback.commit_id)
        resume_deploy_id = rollback.id
    try:
        final = wait_for(ctx, key, service_id, resume_deploy_id, timeout_s=timeout_s, poll_s=poll_s, cancel=False,
                         max_poll_s=max_poll_s)
    except DeployPipeError as exc:
        raise RollbackFailed(f"rollback {resume_deploy_id} of {key} to {to_deploy} did not finish ({exc.message}); "
                             f"live now: {live_now(ctx, service_id)}", where=ctx.where, pending=True,
                             deploy_id=resume_deploy_id,
                             hint="look at the service in the Render dashboard and roll back by hand") from exc
    if final.status != DeployStatus.LIVE:
        raise RollbackFailed(f"rollback {final.id} of {key} to {to_deploy} ended {final.status}: "
                             f"{client.deploy_failure_reason(service_id, final.id)}; live now: "
                             f"{live_now(ctx, service_id)}", where=ctx.where, deploy_id=final.id,
                             hint="the build of the target may have expired; pick another deploy (invoke rollback)")
    note = ""
    if disable_auto_deploy and client.get_service(service_id).auto_deploy:
        client.update_service(service_id, auto_deploy=False)
        note = (f"auto-deploy turned off for {key} so the next push does not redeploy the bad commit; turn it back on "
                f"(Render dashboard > Settings > Auto-Deploy, or PATCH /services/{service_id} autoDeploy=yes) "
                f"when the fix is deployed")
        ctx.emit("auto_deploy_disabled", service=key, service_id=service_id)
    return final, note


def undo_release(ctx: StageContext, key: str, *, service_id: str, ours: str | None, previous: str | None,
                 previous_commit: str | None, timeout_s: float, poll_s: float,
                 disable_auto_deploy: bool, max_poll_s: float = 15.0) -> Compensation:
    """Return ``key`` to deploy ``previous``: cancel our deploy ``ours`` if still running, else roll back."""
    client = ctx.resources.render
    details: dict[str, Any] = {"service": key, "from_deploy": ours, "to_deploy": previous, "commit": previous_commit}
    if not previous:
        return Compensation(action="cannot_undo", verified=False, details=details,
                            summary=f"{key}: no earlier deploy to roll back to; live now: {live_now(ctx, service_id)}")
    if ours:
        current, cancelled = client.get_deploy(service_id, ours), False
        if current.in_progress:  # e.g. the wait timed out without cancelling: stop it before it goes live
            client.cancel_deploy(service_id, ours)
            cancelled = True
            current = wait_for(ctx, key, service_id, ours, timeout_s=timeout_s, poll_s=poll_s, cancel=False,
                               max_poll_s=max_poll_s)
        if current.status in DeployStatus.FAILURE:  # it never went live: the previous release still serves
            live = client.live_deploy(service_id)
            verified = live is not None and live.id == previous
            return Compensation(action="canceled" if cancelled else "nothing_to_do", verified=verified,
                                details={**details, "status": current.status},
                                summary=f"{key}: deploy {ours} ended {current.status} before going live; "
                                        f"live now: {live_now(ctx, service_id)}")
    try:
        final, note = roll_back(ctx, key, service_id, previous, timeout_s=timeout_s, poll_s=poll_s,
                                disable_auto_deploy=disable_auto_deploy, max_poll_s=max_poll_s)
    except RollbackFailed:
        raise
    except DeployPipeError as exc:  # say exactly what is live now, as far as Render can tell us
        raise RollbackFailed(f"{key}: rollback to {previous} failed: {exc.message}; "
                             f"live now: {live_now(ctx, service_id)}", where=ctx.where) from None
    live = client.live_deploy(service_id)
    verified = (live is not None and live.id == final.id
                and (previous_commit is None or live.commit_id == previous_commit))
    summary = f"{key}: rolled back to {previous} (commit {short(previous_commit)}) as {final.id}"
    return Compensation(action="rolled_back", verified=verified, summary=summary + (f"; {note}" if note else ""),
                        restored=Restored(service=key, commit=previous_commit),
                        details={**details, "rollback_deploy_id": final.id, "auto_deploy_note": note},
                        deploys=(deploy_record(key, final),))
