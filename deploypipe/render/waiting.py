"""Waiting on deploys: the timeout error and failure reasons in words from service events."""

from __future__ import annotations

from typing import Any, Iterable

from deploypipe.errors import StageFailed

__all__ = ["DeployTimeout", "describe_failure"]


class DeployTimeout(StageFailed):
    """A deploy did not reach a terminal status in time (``attrs['deploy']`` is the last seen Deploy)."""


def describe_failure(deploy_id: str, events: Iterable[Any]) -> str:
    """Render's reason for a failed deploy, from deploy_ended / build_ended / pre_deploy_ended details."""
    for event in events:
        details = event.details or {}
        if details.get("deployId") not in (deploy_id, None):
            continue
        reason = details.get("reason") or {}
        if event.type == "pre_deploy_ended" and details.get("preDeployStatus") not in (None, "succeeded"):
            return f"pre-deploy command failed ({details.get('preDeployStatus')})"
        if reason.get("buildFailed") or (event.type == "build_ended" and details.get("buildStatus") == "failed"):
            return "build failed"
        failure = reason.get("failure") or {}
        if failure:
            if failure.get("nonZeroExit") is not None:
                return f"the new instance exited with status {failure['nonZeroExit']}"
            if failure.get("timedOutSeconds"):
                return f"the new instance never became healthy within {failure['timedOutSeconds']}s"
            if failure.get("unhealthy"):
                return f"the new instance was unhealthy: {failure['unhealthy']}"
            if failure.get("oomKilled"):
                return "the new instance ran out of memory"
            return "the new instance failed: " + ", ".join(f"{k}={v}" for k, v in failure.items() if v)
        if event.type == "deploy_ended" and details.get("deployStatus") == "canceled":
            return "the deploy was canceled"
    return "Render gave no reason in the service events"
