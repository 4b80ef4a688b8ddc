"""Reading and cancelling a service's deploys, and reading its events: the deploy operations the layers above share."""

from __future__ import annotations

from datetime import datetime

from deploypipe.render.api import RenderApi, iso_time
from deploypipe.render.models import Deploy, ServiceEvent

__all__ = ["cancel_deploy", "get_deploy", "list_deploys", "list_events", "live_deploy"]


def list_deploys(api: RenderApi, service_id: str, *, status: list[str] | None = None,
                 created_after: datetime | float | str | None = None, limit: int | None = None,
                 max_items: int | None = None) -> list[Deploy]:
    """Deploys newest first; ``limit`` is the page size, ``max_items`` caps the total."""
    params = {"status": status, "createdAfter": iso_time(created_after) if created_after is not None else None}
    return [Deploy.from_json(d) for d in
            api.pages(f"/services/{service_id}/deploys", "deploy", params, limit=limit, max_items=max_items)]


def get_deploy(api: RenderApi, service_id: str, deploy_id: str) -> Deploy:
    data = api.call("GET", f"/services/{service_id}/deploys/{deploy_id}", resource=f"deploy {deploy_id}")
    return Deploy.from_json(data)


def live_deploy(api: RenderApi, service_id: str) -> Deploy | None:
    """The deploy serving the service now, or None when none is live."""
    found = list_deploys(api, service_id, status=["live"], max_items=1)
    return found[0] if found else None


def cancel_deploy(api: RenderApi, service_id: str, deploy_id: str) -> Deploy:
    data = api.call("POST", f"/services/{service_id}/deploys/{deploy_id}/cancel", resource=f"deploy {deploy_id}")
    return Deploy.from_json(data)


def list_events(api: RenderApi, service_id: str, *, types: list[str] | None = None,
                start_time: datetime | float | str | None = None, max_items: int | None = 100) -> list[ServiceEvent]:
    """The service's events (``deploy_ended``, ``build_ended``, ...) newest first, from ``start_time`` on."""
    params = {"type": types, "startTime": iso_time(start_time) if start_time is not None else None}
    return [ServiceEvent.from_json(e) for e in
            api.pages(f"/services/{service_id}/events", "event", params, max_items=max_items)]
