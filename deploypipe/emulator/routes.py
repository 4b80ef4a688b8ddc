"""Route handlers of the local Render API, one function per Render operation."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from deploypipe.emulator.app import _error, _multi, _parse_time
from deploypipe.emulator.ids import iso

__all__ = ["dispatch"]


def _services(api: Any, request: Request, body: Any, parts: list[str]) -> Response:
    names = set(_multi(request, "name"))
    types = set(_multi(request, "type"))
    items = [(s.id, api.service_json(s)) for s in api.emu.services.values()
             if (not names or s.name in names) and (not types or api.service_json(s)["type"] in types)]
    return api.page(request, items, "service")


def _deploys(api: Any, request: Request, service: Any) -> Response:
    statuses = set(_multi(request, "status"))
    try:
        after = _parse_time(request.query_params.get("createdAfter"))
        before = _parse_time(request.query_params.get("createdBefore"))
    except ValueError:
        return _error(400, "createdAfter/createdBefore must be ISO 8601 date-times")
    items = [(d.id, d.to_json()) for d in reversed(service.deploys)
             if (not statuses or d.status in statuses) and (after is None or d.created_at >= after)
             and (before is None or d.created_at <= before)]
    return api.page(request, items, "deploy")


def _trigger(api: Any, service: Any, body: dict[str, Any]) -> Response:
    if body.get("clearCache") not in (None, "clear", "do_not_clear"):
        return _error(400, "clearCache must be 'clear' or 'do_not_clear'")
    resolve = getattr(api.emu.runtime, "resolve_commit", None)
    commit, message = body.get("commitId"), None
    if resolve is not None:
        found = resolve(service, commit)
        if found is None:
            return _error(400, f"commit {commit} not found on branch {service.spec.branch}", "invalid_commit")
        commit, message = found
    deploy, queued = api.emu.trigger(service, commit_id=commit, commit_message=message)
    if queued:
        return Response(status_code=202)
    return JSONResponse(deploy.to_json(), status_code=201)


def _service_routes(api: Any, method: str, parts: list[str], request: Request, body: Any) -> Response:
    emu = api.emu
    service = api.find(parts[1])
    if service is None:
        return _error(404, f"service {parts[1]} not found")
    rest = parts[2:]
    if not rest:
        if method == "GET":
            return JSONResponse(api.service_json(service))
        if method == "PATCH":
            if "autoDeploy" in body:
                if body["autoDeploy"] not in ("yes", "no"):
                    return _error(400, "autoDeploy must be 'yes' or 'no'")
                service.auto_deploy = body["autoDeploy"] == "yes"
                service.updated_at = emu.clock()
                emu.event(service, "auto_deploy_disabled" if not service.auto_deploy else "auto_deploy_enabled")
                emu.save()
            return JSONResponse(api.service_json(service))
    elif rest == ["deploys"]:
        if method == "GET":
            return _deploys(api, request, service)
        if method == "POST":
            return _trigger(api, service, body)
    elif rest[0] == "deploys" and len(rest) >= 2:
        deploy = next((d for d in service.deploys if d.id == rest[1]), None)
        if deploy is None:
            return _error(404, f"deploy {rest[1]} not found for service {service.id}")
        if len(rest) == 2 and method == "GET":
            return JSONResponse(deploy.to_json())
        if rest[2:] == ["cancel"] and method == "POST":
            if deploy.status not in ("created", "queued", "build_in_progress", "update_in_progress", "pre_deploy_in_progress"):
                return _error(409, f"deploy {deploy.id} is {deploy.status}; only an in-progress deploy can be cancelled")
            emu.cancel(service, deploy)
            return JSONResponse(deploy.to_json())
    elif rest == ["rollback"] and method == "POST":
        target_id = body.get("deployId")
        target = next((d for d in service.deploys if d.id == target_id), None)
        if not target_id:
            return _error(400, "deployId is required")
        if target is None:
            return _error(404, f"deploy {target_id} not found for service {service.id}")
        if target.status not in ("live", "deactivated") or not target.build_id:
            return _error(400, f"deploy {target_id} ({target.status}) has no build to roll back to")
        deploy, _queued = emu.rollback(service, target)
        return JSONResponse(deploy.to_json(), status_code=201)
    elif rest == ["events"] and method == "GET":
        types = set(_multi(request, "type"))
        items = [(e["id"], e) for e in reversed(service.events) if not types or e["type"] in types]
        return api.page(request, items, "event")
    elif rest[0] == "jobs":
        if len(rest) == 1 and method == "POST":
            if not body.get("startCommand"):
                return _error(400, "startCommand is required")
            return JSONResponse(emu.create_job(service, body["startCommand"]).to_json(), status_code=201)
        if len(rest) == 1 and method == "GET":
            statuses = set(_multi(request, "status"))
            return api.page(request, [(j.id, j.to_json()) for j in reversed(service.jobs)
                                      if not statuses or j.status in statuses], "job")
        job = next((j for j in service.jobs if len(rest) > 1 and j.id == rest[1]), None)
        if job is None:
            return _error(404, f"job {rest[1] if len(rest) > 1 else ''} not found")
        if len(rest) == 2 and method == "GET":
            return JSONResponse(job.to_json())
        if rest[2:] == ["cancel"] and method == "POST":
            if job.status in ("pending", "running"):
                job.status, job.finished_at = "canceled", emu.clock()
            return JSONResponse(job.to_json())
    return _error(404, f"no route for {method} /{'/'.join(parts)}")


def _postgres_routes(api: Any, method: str, parts: list[str], request: Request) -> Response:
    emu = api.emu
    if len(parts) == 1 and method == "GET":
        names = set(_multi(request, "name"))
        return api.page(request, [(p.id, api.postgres_json(p)) for p in emu.postgres.values()
                                  if not names or p.name in names], "postgres")
    db = emu.postgres.get(parts[1])
    if db is None:
        return _error(404, f"postgres {parts[1]} not found")
    rest = parts[2:]
    if not rest and method == "GET":
        return JSONResponse(api.postgres_json(db))
    if rest == ["connection-info"] and method == "GET":
        return JSONResponse({"password": db.password, "internalConnectionString": db.url,
                             "externalConnectionString": db.url, "psqlCommand": f"psql {db.url}"})
    if rest == ["export"] and method == "POST":
        export = getattr(emu.runtime, "export_postgres", None)
        url = export(db) if export else None
        db.exports.append({"id": f"exp-{len(db.exports) + 1:04d}", "createdAt": iso(emu.clock()),
                           **({"url": url} if url else {})})
        return Response(status_code=202)
    if rest == ["export"] and method == "GET":
        return JSONResponse(list(reversed(db.exports)))
    if rest == ["recovery"] and method == "GET":
        return JSONResponse({"recoveryStatus": "NOT_AVAILABLE"})
    return _error(404, f"no route for {method} /{'/'.join(parts)}")


def dispatch(api: Any, method: str, parts: list[str], request: Request, body: Any) -> Response:
    if parts == ["services"] and method == "GET":
        return _services(api, request, body, parts)
    if parts[0] == "services" and len(parts) >= 2:
        return _service_routes(api, method, parts, request, body if isinstance(body, dict) else {})
    if parts[0] == "postgres":
        return _postgres_routes(api, method, parts, request)
    return _error(404, f"no route for {method} /{'/'.join(parts)}")
