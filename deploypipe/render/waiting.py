"""Waiting on a deploy: polling with back-off, status transitions, the timeout error, failure reasons in words."""

from __future__ import annotations

from typing import Any, Callable, Iterable

import structlog

from deploypipe.core.polling import poll
from deploypipe.errors import ConflictError, ProviderError
from deploypipe.render.api import RenderApi
from deploypipe.render.deploys import cancel_deploy, get_deploy, list_events
from deploypipe.render.models import Deploy, DeployStatus, ServiceEvent

__all__ = ["DeployTimeout", "deploy_failure_reason", "describe_failure", "wait_for_deploy"]

log = structlog.get_logger("deploypipe.render")
_GROWTH = 1.5


class DeployTimeout(ProviderError):
    """A deploy did not reach a terminal status in time; ``cancelled`` says whether it was cancelled."""

    def __init__(self, message: str, *, deploy_id: str, status: str | None, cancelled: bool, **kwargs: Any):
        self.deploy_id = deploy_id
        self.status = status
        self.cancelled = cancelled
        super().__init__(message, **kwargs)


def wait_for_deploy(api: RenderApi, service_id: str, deploy_id: str, *, timeout_s: float, poll_s: float = 2.0,
                    max_poll_s: float = 15.0, on_status: Callable[[Deploy], None] | None = None,
                    cancel_on_timeout: bool = False) -> Deploy:
    """Poll until the deploy is terminal; intervals grow from ``poll_s`` by 1.5x up to ``max_poll_s``.

    Each status change is logged once (``deploy_status`` with ``from``/``to``)
    and passed to ``on_status``. On timeout the deploy is cancelled when asked
    (a deploy that finished meanwhile is returned instead) and DeployTimeout raised.
    """
    latest: list[Deploy] = []  # the last answer (a poll's result is only the terminal deploy)

    def check() -> Deploy | None:
        deploy = get_deploy(api, service_id, deploy_id)
        last = latest[0].status if latest else None
        latest[:] = [deploy]
        if deploy.status != last:
            log.info("deploy_status", service_id=service_id, deploy_id=deploy_id, **{"from": last, "to": deploy.status})
            if on_status is not None:
                on_status(deploy)
        return deploy if deploy.terminal else None

    final = poll(check, timeout_s=timeout_s, interval_s=max(0.1, poll_s), clock=api.clock, sleep=api.sleep,
                 growth=_GROWTH, max_interval_s=max_poll_s)
    if final is not None:
        return final
    return _timed_out(api, service_id, latest[0], timeout_s, cancel_on_timeout)


def _timed_out(api: RenderApi, service_id: str, deploy: Deploy, timeout_s: float, cancel: bool) -> Deploy:
    cancelled = False
    if cancel:
        try:
            cancel_deploy(api, service_id, deploy.id)
            cancelled = True
            log.warning("deploy_cancelled_after_timeout", service_id=service_id, deploy_id=deploy.id,
                        status=deploy.status, timeout_s=timeout_s)
        except ConflictError:  # it finished between the last poll and the cancel
            final = get_deploy(api, service_id, deploy.id)
            if final.terminal:
                return final
    raise DeployTimeout(
        f"deploy {deploy.id} still {deploy.status} after {timeout_s:g}s" + ("; cancelled it" if cancelled else ""),
        where=f"service {service_id}", deploy_id=deploy.id, status=deploy.status, cancelled=cancelled,
        hint="raise timeout_s if builds are slow, or look at the deploy's logs in the Render dashboard")


_BY_STATUS = {
    "build_failed": "the build failed",
    "pre_deploy_failed": "the pre-deploy command failed",
    "update_failed": "the new instance did not become healthy",
    "canceled": "the deploy was canceled",
}


def _failure_words(failure: dict[str, Any]) -> str | None:
    if failure.get("nonZeroExit") is not None:
        return f"the new instance exited with status {failure['nonZeroExit']}"
    if failure.get("earlyExit"):
        return "the new instance exited early"
    if failure.get("oomKilled"):
        limit = (failure["oomKilled"] or {}).get("memoryLimit") if isinstance(failure["oomKilled"], dict) else None
        return "the new instance ran out of memory" + (f" (limit {limit})" if limit else "")
    if failure.get("timedOutSeconds"):
        why = f": {failure['timedOutReason']}" if failure.get("timedOutReason") else ""
        return f"the new instance was not healthy within {failure['timedOutSeconds']}s{why}"
    if failure.get("unhealthy"):
        return f"the new instance was unhealthy: {failure['unhealthy']}"
    if failure.get("evicted"):
        reason = failure.get("evictionReason")
        return "the new instance was evicted" + (f": {reason}" if reason else "")
    return None


def describe_failure(deploy_id: str, events: Iterable[ServiceEvent], status: str | None = None) -> str:
    """Render's reason for a failed deploy, from its deploy_ended / pre_deploy_ended / build_ended events."""
    words: list[str] = []
    for event in events:
        details = dict(event.details or {})
        if details.get("deployId") != deploy_id and event.type != "build_ended":
            continue
        reason = details.get("reason") or {}
        if event.type == "pre_deploy_ended" and details.get("preDeployStatus") not in (None, "succeeded"):
            words.append(f"the pre-deploy command {details.get('preDeployStatus')}")
        elif event.type == "build_ended" and details.get("buildStatus") == "failed" and status == "build_failed":
            words.append("the build failed")
        elif event.type == "deploy_ended":
            if reason.get("buildFailed"):
                words.append("the build failed")
            elif _failure_words(reason.get("failure") or {}):
                words.append(_failure_words(reason.get("failure") or {}) or "")
            elif reason.get("newDeploy"):
                words.append(f"a newer deploy ({(reason['newDeploy'] or {}).get('id', '?')}) superseded it")
            elif details.get("deployStatus") == "canceled":
                words.append("the deploy was canceled")
    if words:
        return "; ".join(dict.fromkeys(words))
    fallback = _BY_STATUS.get(status or "", "Render gave no reason")
    return f"{fallback} (no details in Render's service events; see the deploy's logs in the dashboard)"


def deploy_failure_reason(api: RenderApi, service_id: str, deploy_id: str) -> str:
    """Why a deploy failed, in words: events since the deploy was created, else its status."""
    deploy = get_deploy(api, service_id, deploy_id)
    events = list_events(api, service_id, types=["deploy_ended", "pre_deploy_ended", "build_ended"],
                                start_time=deploy.created_at, max_items=50)
    return describe_failure(deploy_id, events, deploy.status if deploy.status in DeployStatus.FAILURE else None)
