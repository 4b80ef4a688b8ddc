"""The local Render's HTTP API: Render's paths, JSON shapes, status codes, pagination and rate-limit headers."""

from __future__ import annotations

import asyncio
import base64
from datetime import datetime
from typing import Any, Iterable

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from deploypipe.emulator.ids import iso
from deploypipe.emulator.state import Emulator, ServiceRec

__all__ = ["create_app"]

SERVICE_TYPES = {"web": "web_service", "pserv": "private_service", "worker": "background_worker", "cron": "cron_job"}
DEPLOY_LIMIT = 10  # per service per minute (Render: PATCH service / trigger deploy)
GET_LIMIT = 400  # per key per minute
OTHER_LIMIT = 30


def _error(status: int, message: str, error_id: str | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"id": error_id or {400: "bad_request", 401: "unauthorized", 404: "not_found", 409: "conflict",
                                             429: "rate_limited"}.get(status, "server_error"), "message": message},
                        status_code=status, headers=headers)


def _cursor(item_id: str) -> str:
    return base64.urlsafe_b64encode(item_id.encode()).decode().rstrip("=")


def _after_cursor(items: list[tuple[str, Any]], cursor: str | None) -> list[tuple[str, Any]]:
    if not cursor:
        return items
    try:
        item_id = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return []
    ids = [i for i, _ in items]
    return items[ids.index(item_id) + 1:] if item_id in ids else []


def _multi(request: Request, name: str) -> list[str]:
    values: list[str] = []
    for raw in request.query_params.getlist(name) + request.query_params.getlist(f"{name}[]"):
        values.extend(v for v in raw.split(",") if v)
    return values


def _parse_time(value: str | None) -> float | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


class _Api:
    def __init__(self, emulator: Emulator):
        self.emu = emulator
        self.windows: dict[tuple[str, int], int] = {}

    # -- shapes ----------------------------------------------------------------------------
    def service_json(self, s: ServiceRec) -> dict[str, Any]:
        spec = s.spec
        native = {"buildCommand": spec.buildCommand, "startCommand": spec.startCommand}
        if spec.preDeployCommand:
            native["preDeployCommand"] = spec.preDeployCommand
        runtime = spec.runtime if spec.runtime in ("docker", "elixir", "go", "image", "node", "python", "ruby", "rust") else "python"
        return {
            "id": s.id, "name": s.name, "ownerId": self.emu.owner_id, "type": SERVICE_TYPES.get(spec.type, "web_service"),
            "createdAt": iso(s.created_at), "updatedAt": iso(s.updated_at),
            "dashboardUrl": f"https://dashboard.render.com/web/{s.id}", "suspended": "not_suspended", "suspenders": [],
            "autoDeploy": "yes" if s.auto_deploy else "no", "notifyOnFail": "default", "slug": s.name,
            "rootDir": spec.rootDir, "branch": spec.branch, "repo": spec.repo or "https://github.com/local/repo",
            "serviceDetails": {
                "env": runtime, "runtime": runtime, "envSpecificDetails": native, "plan": "starter", "region": spec.region
                if spec.region in ("frankfurt", "oregon", "ohio", "singapore", "virginia") else "oregon",
                "numInstances": 1, "buildPlan": "starter", "healthCheckPath": spec.healthCheckPath or "",
                "openPorts": [{"port": 10000, "protocol": "TCP"}], "url": s.url, "pullRequestPreviewsEnabled": "no",
            },
        }

    def postgres_json(self, p: Any) -> dict[str, Any]:
        return {"id": p.id, "ipAllowList": [], "createdAt": iso(p.created_at), "updatedAt": iso(p.created_at),
                "dashboardUrl": f"https://dashboard.render.com/d/{p.id}", "databaseName": p.database,
                "databaseUser": p.user, "highAvailabilityEnabled": False, "name": p.name,
                "owner": {"id": self.emu.owner_id, "name": "local", "email": "local@deploypipe.invalid", "type": "user"},
                "plan": "basic_256mb", "region": "oregon", "readReplicas": [], "role": "primary", "status": "available",
                "version": p.version, "suspended": "not_suspended", "suspenders": [],
                "project": {"id": "prj-local", "name": "local", "createdAt": iso(p.created_at),
                            "updatedAt": iso(p.created_at), "environmentIds": [],
                            "owner": {"id": self.emu.owner_id, "name": "local", "email": "local@deploypipe.invalid",
                                      "type": "user"}}}

    # -- plumbing ------------------------------------------------------------------------------
    def _limit(self, key: str, limit: int) -> tuple[int, int, int]:
        now = self.emu.clock()
        window = int(now // 60)
        used = self.windows.get((key, window), 0)
        reset = int(60 - now % 60) or 60
        return used, limit, reset

    def _count(self, key: str) -> None:
        window = int(self.emu.clock() // 60)
        self.windows[(key, window)] = self.windows.get((key, window), 0) + 1

    def page(self, request: Request, items: Iterable[tuple[str, Any]], key: str) -> JSONResponse:
        try:
            limit = max(1, min(100, int(request.query_params.get("limit", 20))))
        except ValueError:
            return _error(400, "limit must be an integer between 1 and 100")
        rest = _after_cursor(list(items), request.query_params.get("cursor"))[:limit]
        return JSONResponse([{key: value, "cursor": _cursor(item_id)} for item_id, value in rest])

    def find(self, service_id: str) -> ServiceRec | None:
        return self.emu.service(service_id)

    # -- dispatcher -------------------------------------------------------------------------
    async def handle(self, request: Request) -> Response:
        emu = self.emu
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in emu.api_keys:
            return _error(401, "Unauthorized: missing or invalid API key")
        method = request.method
        path = "/" + request.path_params["path"].strip("/")
        rule = emu.faults.take(method, path)
        if rule is not None:
            if rule.action == "status":
                headers = {"Retry-After": str(int(rule.retry_after_s))} if rule.status == 429 and rule.retry_after_s is not None else None
                return _error(rule.status, f"injected fault: {rule.status}", headers=headers)
            if rule.action == "latency":
                await asyncio.sleep(rule.latency_s)
            if rule.action == "drop":
                raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
        bucket = "get" if method == "GET" else "write"
        key = auth[7:] + ":" + bucket
        used, limit, reset = self._limit(key, GET_LIMIT if method == "GET" else OTHER_LIMIT)
        deploy_key = None
        if method == "POST" and path.endswith("/deploys"):
            deploy_key = "deploys:" + path.split("/")[2]
            used, limit, reset = self._limit(deploy_key, DEPLOY_LIMIT)
        headers = {"Ratelimit-Limit": str(limit), "Ratelimit-Remaining": str(max(0, limit - used - 1)),
                   "Ratelimit-Reset": str(reset)}
        if used >= limit:
            return _error(429, "Rate limit has been surpassed", headers={**headers, "Retry-After": str(reset),
                                                                          "Ratelimit-Remaining": "0"})
        self._count(deploy_key or key)
        response = self.route(method, path.strip("/").split("/"), request, await self._body(request))
        if rule is not None and rule.action == "queued" and response.status_code == 201:
            response = Response(status_code=202)
        if rule is not None and rule.action == "accept_then_timeout":
            if getattr(emu, "in_process", False):
                raise httpx.ReadTimeout("injected: accepted, then no answer in time")
            await asyncio.sleep(rule.latency_s or 120)
        response.headers.update(headers)
        return response

    async def _body(self, request: Request) -> Any:
        raw = await request.body()
        if not raw:
            return {}
        try:
            return await request.json()
        except ValueError:
            return None

    def route(self, method: str, parts: list[str], request: Request, body: Any) -> Response:
        if body is None:
            return _error(400, "request body could not be understood (invalid JSON)")
        from deploypipe.emulator.routes import dispatch

        return dispatch(self, method, parts, request, body)


def create_app(emulator: Emulator) -> Starlette:
    api = _Api(emulator)

    async def faults(request: Request) -> Response:
        if request.method == "DELETE":
            emulator.faults.clear()
            return Response(status_code=204)
        body = await request.json()
        rules = body if isinstance(body, list) else [body]
        for rule in rules:
            apply_fault(emulator, rule)
        return JSONResponse({"faults": len(emulator.faults.rules)}, status_code=201)

    return Starlette(routes=[
        Route("/_emulator/faults", faults, methods=["POST", "DELETE"]),
        Route("/v1/{path:path}", api.handle, methods=["GET", "POST", "PATCH", "PUT", "DELETE"]),
    ])


def apply_fault(emulator: Emulator, rule: dict[str, Any]) -> None:
    """Add a rule; ``fail_deploy`` marks the service's next deploy instead of matching requests."""
    if rule.get("action") == "fail_deploy":
        target = rule.get("service")
        for service in emulator.services.values():
            if target in (service.id, service.name):
                service.fail_next = rule.get("phase") or "update"
                return
        raise ValueError(f"fail_deploy: no service {target!r}")
    emulator.faults.add(**rule)

