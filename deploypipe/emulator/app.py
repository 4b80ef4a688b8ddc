"""The local Render's HTTP API: bearer auth, injected faults, rate limits, then Render's operations.

Every answer carries ``Ratelimit-Limit`` / ``Ratelimit-Remaining`` /
``Ratelimit-Reset``; a request over its bucket gets 429 with ``Retry-After``.
Faults (``faults.py``) are applied after authentication and before the rate
limit: ``status`` answers at once, ``latency`` waits first, ``drop`` closes
the connection without doing anything, ``accept_then_timeout`` does the work
and then never answers in time, ``accept_then_status`` does the work and
answers an error status instead, ``accept_then_drop`` does the work and closes
the connection without an answer, ``queued`` turns a 201 trigger into 202.
``POST /_emulator/faults`` (a rule or a list) adds rules, ``DELETE`` clears
them; ``POST /_emulator/push {service, commitId, message}`` is a git push to
the service's branch (auto-deploy); that test API needs no key.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from deploypipe.emulator.connfaults import mark_drop, mark_stall, with_connection_faults
from deploypipe.emulator.faults import FaultRule
from deploypipe.emulator.ratelimit import RateLimiter
from deploypipe.emulator.routes import dispatch
from deploypipe.emulator.shapes import error
from deploypipe.emulator.state import Emulator

__all__ = ["EmulatorApp", "apply_fault", "create_app"]

DEFAULT_STALL_S = 120.0  # accept_then_timeout without latency_s: longer than any sane client read timeout


class _Api:
    def __init__(self, emulator: Emulator):
        self.emu = emulator
        self.limits = RateLimiter(clock=emulator.clock)

    async def handle(self, request: Request) -> Response:
        emu, method = self.emu, request.method
        path = "/" + request.path_params["path"].strip("/")
        auth = request.headers.get("authorization", "")
        key = auth[7:] if auth.startswith("Bearer ") else ""
        if key not in emu.api_keys:
            headers = self.limits.check("anonymous", method, path, consume=False).headers()
            return error(401, "Unauthorized: missing or invalid API key", headers=headers)
        rule = emu.faults.take(method, path)
        if rule is not None and rule.action == "latency":
            await asyncio.sleep(rule.latency_s)
        if rule is not None and rule.action in ("status", "drop"):
            headers = self.limits.check(key, method, path, consume=False).headers()
            if rule.action == "drop":
                mark_drop(request.scope)
                return Response(status_code=500)
            if rule.status == 429 and rule.retry_after_s is not None:
                headers["Retry-After"] = str(int(rule.retry_after_s))
            return error(rule.status, f"injected fault: {rule.status} for {method} {path}", headers=headers)
        decision = self.limits.check(key, method, path)
        if not decision.allowed:
            return error(429, f"Rate limit has been surpassed for {method} {path}: {decision.limit} per minute; "
                              f"retry after {decision.reset_s}s", headers=decision.headers())
        try:
            body = await self._body(request)
        except ClientDisconnect:  # the client gave up (e.g. during injected latency): nobody to answer
            return Response(status_code=499)
        response: Response
        if body is None:
            response = error(400, f"{method} {path}: the request body is not a JSON object")
        else:
            response = dispatch(emu, method, path.strip("/").split("/"), request, body)
        if rule is not None:
            response = self._after_work(rule, request, response)
        response.headers.update(decision.headers())
        return response

    @staticmethod
    def _after_work(rule: FaultRule, request: Request, response: Response) -> Response:
        """The answer a fault that acts after the work leaves: 202 for a 201, an error status, or none at all."""
        if rule.action == "queued" and response.status_code == 201:
            return Response(status_code=202)
        if rule.action == "accept_then_status":
            return error(rule.status, f"injected fault: {rule.status} after performing {request.method} "
                                      f"{request.url.path}")
        if rule.action == "accept_then_timeout":
            mark_stall(request.scope, rule.latency_s or DEFAULT_STALL_S)
        if rule.action == "accept_then_drop":
            mark_drop(request.scope)
        return response

    @staticmethod
    async def _body(request: Request) -> dict[str, Any] | None:
        raw = await request.body()
        if not raw.strip():
            return {}
        try:
            body = await request.json()
        except ValueError:
            return None
        return body if isinstance(body, dict) else None


class EmulatorApp(Starlette):
    """Starlette, with connection-level faults applied around everything (they need uvicorn's own ``send``)."""

    def __init__(self, emulator: Emulator, **kwargs: Any):
        super().__init__(**kwargs)
        self.emulator = emulator

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await with_connection_faults(super().__call__, scope, receive, send, self.emulator.closing)


def create_app(emulator: Emulator) -> Starlette:
    """The ASGI app serving ``/v1/...`` (Render's API) and ``/_emulator/faults`` (the test API)."""
    api = _Api(emulator)

    async def faults(request: Request) -> Response:
        if request.method == "DELETE":
            emulator.faults.clear()
            return Response(status_code=204)
        try:
            body = await request.json()
            rules = body if isinstance(body, list) else [body]
            for rule in rules:
                apply_fault(emulator, rule)
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            return error(400, f"/_emulator/faults: {exc}")
        return JSONResponse({"faults": len(emulator.faults.rules)}, status_code=201)

    async def pushed(request: Request) -> Response:
        from deploypipe.emulator.autodeploy import push

        body = await request.json()
        service = next((s for s in emulator.services.values() if body.get("service") in (s.id, s.name)), None)
        if service is None or not body.get("commitId"):
            return error(400, f"/_emulator/push: need an existing service (name or id) and a commitId, got {body!r}")
        deploy = push(emulator, service, body["commitId"], body.get("message", ""))
        return JSONResponse(deploy.to_json(), status_code=201) if deploy else Response(status_code=204)

    return EmulatorApp(emulator, routes=[
        Route("/_emulator/faults", faults, methods=["POST", "DELETE"]),
        Route("/_emulator/push", pushed, methods=["POST"]),
        Route("/v1/{path:path}", api.handle, methods=["GET", "POST", "PATCH", "PUT", "DELETE"]),
    ])


def _named(records: Any, target: Any, action: str, kind: str, plural: str) -> Any:
    """The record whose id or name is ``target``; ValueError naming the known ones otherwise."""
    found = next((r for r in records if target in (r.id, r.name)), None)
    if found is None:
        known = ", ".join(r.name for r in records) or "none"
        raise ValueError(f"{action}: no {kind} {target!r} ({plural}: {known})")
    return found


def apply_fault(emulator: Emulator, rule: dict[str, Any]) -> None:
    """Add a rule; ``fail_deploy`` / ``fail_recovery`` mark the next deploy of a service / recovery of a Postgres
    (by name or id) instead of matching requests."""
    if rule.get("action") == "fail_recovery":
        _named(list(emulator.postgres.values()), rule.get("postgres"), "fail_recovery", "postgres",
               "postgres").fail_next_recovery = True
        return
    if rule.get("action") == "fail_deploy":
        phase = rule.get("phase") or "update"
        if phase not in ("build", "pre_deploy", "update"):
            raise ValueError(f"fail_deploy: phase must be build, pre_deploy or update, got {phase!r}")
        _named(list(emulator.services.values()), rule.get("service"), "fail_deploy", "service",
               "services").fail_next = phase
        return
    emulator.faults.add(**rule)
