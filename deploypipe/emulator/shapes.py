"""Render's JSON shapes for the local Render: services, Postgres, error bodies, cursor pages, query parsing."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any, Iterable

from starlette.requests import Request
from starlette.responses import JSONResponse

from deploypipe.emulator.ids import iso
from deploypipe.emulator.records import PostgresRec, ServiceRec
from deploypipe.emulator.state import Emulator

__all__ = ["error", "multi", "page", "parse_time", "postgres_json", "service_json"]

SERVICE_TYPES = {"web": "web_service", "pserv": "private_service", "worker": "background_worker", "cron": "cron_job"}
_RUNTIMES = ("docker", "elixir", "go", "image", "node", "python", "ruby", "rust")
_REGIONS = ("frankfurt", "oregon", "ohio", "singapore", "virginia")
_ERROR_IDS = {400: "bad_request", 401: "unauthorized", 404: "not_found", 409: "conflict", 429: "rate_limited",
              500: "internal_server_error", 502: "bad_gateway", 503: "service_unavailable"}


def error(status: int, message: str, error_id: str | None = None,
          headers: dict[str, str] | None = None) -> JSONResponse:
    """Render's error body ``{id, message}``."""
    return JSONResponse({"id": error_id or _ERROR_IDS.get(status, "error"), "message": message},
                        status_code=status, headers=headers)


def _cursor(item_id: str) -> str:
    return base64.urlsafe_b64encode(item_id.encode()).decode().rstrip("=")


def page(request: Request, items: Iterable[tuple[str, Any]], key: str) -> JSONResponse:
    """A cursor page ``[{<key>: item, cursor}]``; ``cursor`` = the last item's cursor of the previous page."""
    try:
        limit = int(request.query_params.get("limit", 20))
    except ValueError:
        return error(400, f"limit must be an integer between 1 and 100, got {request.query_params.get('limit')!r}")
    if not 1 <= limit <= 100:
        return error(400, f"limit must be between 1 and 100, got {limit}")
    rows = list(items)
    cursor = request.query_params.get("cursor")
    if cursor:
        ids = [item_id for item_id, _ in rows]
        try:
            after = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        except (ValueError, UnicodeDecodeError):
            return error(400, f"cursor {cursor!r} is not a cursor this API returned")
        rows = rows[ids.index(after) + 1:] if after in ids else []
    return JSONResponse([{key: value, "cursor": _cursor(item_id)} for item_id, value in rows[:limit]])


def multi(request: Request, name: str) -> list[str]:
    """An array query parameter: ``name=a&name=b``, ``name[]=a`` or ``name=a,b``."""
    values: list[str] = []
    for raw in request.query_params.getlist(name) + request.query_params.getlist(f"{name}[]"):
        values.extend(v for v in raw.split(",") if v)
    return values


def parse_time(value: str | None) -> float | None:
    """An ISO 8601 date-time (``Z`` or offset) or epoch seconds, as epoch seconds."""
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        return datetime.fromisoformat(value).timestamp()


def service_json(emu: Emulator, s: ServiceRec) -> dict[str, Any]:
    spec = s.spec
    native = {"buildCommand": spec.buildCommand, "startCommand": spec.startCommand}
    if spec.preDeployCommand:
        native["preDeployCommand"] = spec.preDeployCommand
    runtime = spec.runtime if spec.runtime in _RUNTIMES else "python"
    details: dict[str, Any] = {
        "env": runtime, "runtime": runtime, "envSpecificDetails": native, "plan": "starter",
        "region": spec.region if spec.region in _REGIONS else "oregon", "numInstances": 1, "buildPlan": "starter",
        "pullRequestPreviewsEnabled": "no", "maxShutdownDelaySeconds": 30,
    }
    if spec.type in ("web", "pserv"):
        details.update(openPorts=[{"port": 10000, "protocol": "TCP"}], url=s.url)
    if spec.type == "web":
        details["healthCheckPath"] = spec.healthCheckPath or ""
    if spec.type == "cron":
        details["schedule"] = spec.schedule or ""
        ended = [e for e in s.events if e["type"] == "cron_job_run_ended" and e["details"]["status"] == "successful"]
        if ended:
            details["lastSuccessfulRunAt"] = ended[-1]["timestamp"]
    return {
        "id": s.id, "name": s.name, "ownerId": emu.owner_id, "type": SERVICE_TYPES.get(spec.type, "web_service"),
        "createdAt": iso(s.created_at), "updatedAt": iso(s.updated_at),
        "dashboardUrl": f"https://dashboard.render.com/web/{s.id}", "suspended": "not_suspended", "suspenders": [],
        "autoDeploy": "yes" if s.auto_deploy else "no", "notifyOnFail": "default", "slug": s.name,
        "rootDir": spec.rootDir, "branch": spec.branch, "repo": spec.repo or "https://github.com/local/repo",
        "serviceDetails": details,
    }


def postgres_json(emu: Emulator, p: PostgresRec) -> dict[str, Any]:
    owner = {"id": emu.owner_id, "name": "local", "email": "local@deploypipe.invalid", "type": "user"}
    data: dict[str, Any] = {
        "id": p.id, "ipAllowList": [], "createdAt": iso(p.created_at), "updatedAt": iso(p.created_at),
        "dashboardUrl": f"https://dashboard.render.com/d/{p.id}", "databaseName": p.database,
        "databaseUser": p.user, "highAvailabilityEnabled": False, "name": p.name, "owner": owner,
        "plan": p.plan, "region": "oregon", "readReplicas": [], "role": "primary", "status": p.status,
        "version": p.version, "suspended": "not_suspended", "suspenders": [],
        "project": {"id": "prj-local", "name": "local", "createdAt": iso(p.created_at),
                    "updatedAt": iso(p.created_at), "environmentIds": [], "owner": owner},
    }
    if p.environment_id:
        data["environmentId"] = p.environment_id
    return data
