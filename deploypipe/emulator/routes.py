"""Route handlers of the local Render API, one function per Render operation (paths without ``/v1``)."""

from __future__ import annotations

from typing import Any, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from deploypipe.emulator import observability
from deploypipe.emulator.records import IN_PROGRESS, ServiceRec
from deploypipe.emulator.shapes import error, multi, page, parse_time, postgres_json, service_json
from deploypipe.emulator.state import Emulator

__all__ = ["dispatch"]

EVENT_WINDOW_S = 3600.0  # Render's events endpoint defaults to startTime = now - 1 h


def _times(request: Request, *names: str) -> list[float | None] | Response:
    try:
        return [parse_time(request.query_params.get(name)) for name in names]
    except ValueError:
        return error(400, f"{'/'.join(names)} must be ISO 8601 date-times, e.g. 2026-01-31T12:00:00Z")


def list_services(emu: Emulator, request: Request) -> Response:
    names, types = set(multi(request, "name")), set(multi(request, "type"))
    rows = [(s.id, service_json(emu, s)) for s in emu.all_services()]
    return page(request, [(i, s) for i, s in rows if (not names or s["name"] in names)
                          and (not types or s["type"] in types)], "service")


def list_deploys(emu: Emulator, request: Request, service: ServiceRec) -> Response:
    statuses = set(multi(request, "status"))
    times = _times(request, "createdAfter", "createdBefore")
    if isinstance(times, Response):
        return times
    after, before = times
    return page(request, [(d.id, d.to_json()) for d in reversed(service.deploys)
                          if (not statuses or d.status in statuses) and (after is None or d.created_at >= after)
                          and (before is None or d.created_at <= before)], "deploy")


def trigger_deploy(emu: Emulator, service: ServiceRec, body: dict[str, Any]) -> Response:
    if body.get("clearCache") not in (None, "clear", "do_not_clear"):
        return error(400, f"clearCache must be 'clear' or 'do_not_clear', got {body.get('clearCache')!r}")
    if body.get("imageUrl") and service.spec.runtime != "image":
        return error(400, f"imageUrl is only for image-backed services; service {service.id} builds from a repository")
    resolve = getattr(emu.runtime, "resolve_commit", None)
    commit, message = body.get("commitId"), None
    if resolve is not None:
        found = resolve(service, commit)
        if found is None:
            return error(400, f"commit {commit} not found in the repository of service {service.id}", "invalid_commit")
        commit, message = found
    deploy, queued = emu.trigger(service, commit_id=commit, commit_message=message,
                                 clear_cache=body.get("clearCache") == "clear")
    if queued:  # Render answers 202 "Queued" with no body when another deploy is in progress
        return Response(status_code=202)
    return JSONResponse(deploy.to_json(), status_code=201)


def rollback(emu: Emulator, service: ServiceRec, body: dict[str, Any]) -> Response:
    target_id = body.get("deployId")
    if not target_id:
        return error(400, "deployId is required")
    target = next((d for d in service.deploys if d.id == target_id), None)
    if target is None:
        return error(404, f"deploy {target_id} not found for service {service.id}")
    if target.status not in ("live", "deactivated") or not target.build_id:
        return error(400, f"deploy {target_id} is {target.status}: only a deploy that went live has a build to "
                          "roll back to")
    has_build = getattr(emu.runtime, "has_build", None)
    if has_build is not None and not has_build(service, target):
        return error(400, f"deploy {target_id}: its build {target.build_id} is no longer available (Render keeps a "
                          "limited number of builds); pick a more recent deploy")
    deploy, _queued = emu.rollback(service, target)
    return JSONResponse(deploy.to_json(), status_code=201)


def list_events(emu: Emulator, request: Request, service: ServiceRec) -> Response:
    types = set(multi(request, "type"))
    times = _times(request, "startTime", "endTime")
    if isinstance(times, Response):
        return times
    end = times[1] if times[1] is not None else emu.clock()
    start = times[0] if times[0] is not None else end - EVENT_WINDOW_S
    return page(request, [(e["id"], e) for e in reversed(service.events) if (not types or e["type"] in types)
                          and start <= (parse_time(e["timestamp"]) or 0) <= end], "event")


def jobs(emu: Emulator, method: str, rest: list[str], request: Request, service: ServiceRec, body: dict) -> Response:
    if len(rest) == 1 and method == "POST":
        if not isinstance(body.get("startCommand"), str) or not body["startCommand"].strip():
            return error(400, "startCommand is required: the command to run against the service's latest build")
        return JSONResponse(emu.create_job(service, body["startCommand"]).to_json(), status_code=201)
    if len(rest) == 1 and method == "GET":
        statuses = set(multi(request, "status"))
        return page(request, [(j.id, j.to_json()) for j in reversed(service.jobs)
                              if not statuses or j.status in statuses], "job")
    if len(rest) == 1:
        return _no_route(method, ["services", service.id, *rest])
    job = next((j for j in service.jobs if j.id == rest[1]), None)
    if job is None:
        return error(404, f"job {rest[1]} not found for service {service.id}")
    if len(rest) == 2 and method == "GET":
        return JSONResponse(job.to_json())
    if rest[2:] == ["cancel"] and method == "POST":
        emu.cancel_job(service, job)
        return JSONResponse(job.to_json())
    return _no_route(method, ["services", service.id, *rest])


def service_routes(emu: Emulator, method: str, parts: list[str], request: Request, body: dict) -> Response:
    service = emu.service(parts[1])
    if service is None:
        return error(404, f"service {parts[1]} not found")
    rest = parts[2:]
    if not rest and method == "GET":
        return JSONResponse(service_json(emu, service))
    if not rest and method == "PATCH":
        if "autoDeploy" in body and body["autoDeploy"] not in ("yes", "no"):
            return error(400, f"autoDeploy must be 'yes' or 'no', got {body['autoDeploy']!r}")
        if "autoDeploy" in body and (body["autoDeploy"] == "yes") != service.auto_deploy:
            # (no auto_deploy_disabled event: the spec this emulator follows has no such event type yet)
            service.auto_deploy = body["autoDeploy"] == "yes"
            service.updated_at = emu.clock()
            emu.save()
        return JSONResponse(service_json(emu, service))
    if rest == ["deploys"] and method == "GET":
        return list_deploys(emu, request, service)
    if rest == ["deploys"] and method == "POST":
        return trigger_deploy(emu, service, body)
    if rest[:1] == ["deploys"] and len(rest) in (2, 3):
        deploy = next((d for d in service.deploys if d.id == rest[1]), None)
        if deploy is None:
            return error(404, f"deploy {rest[1]} not found for service {service.id}")
        if len(rest) == 2 and method == "GET":
            return JSONResponse(deploy.to_json())
        if rest[2:] == ["cancel"] and method == "POST":
            if deploy.status not in IN_PROGRESS | {"queued"}:
                return error(409, f"deploy {deploy.id} is {deploy.status}; only an in-progress deploy can be cancelled")
            emu.cancel(service, deploy)
            return JSONResponse(deploy.to_json())
    if rest == ["rollback"] and method == "POST":
        return rollback(emu, service, body)
    if rest == ["events"] and method == "GET":
        return list_events(emu, request, service)
    if rest[:1] == ["jobs"] and len(rest) <= 3:
        return jobs(emu, method, rest, request, service, body)
    return _no_route(method, parts)


def postgres_routes(emu: Emulator, method: str, parts: list[str], request: Request, body: dict) -> Response:
    from deploypipe.emulator import recovery
    from deploypipe.emulator.databases import connection_info, export

    recovery.advance(emu)  # recovery clones whose creating period has passed become available
    if len(parts) == 1 and method == "GET":
        names = set(multi(request, "name"))
        return page(request, [(p.id, postgres_json(emu, p)) for p in emu.postgres.values()
                              if not names or p.name in names], "postgres")
    db = emu.postgres.get(parts[1])
    if db is None:
        return error(404, f"postgres {parts[1]} not found")
    rest = parts[2:]
    if not rest and method == "GET":
        return JSONResponse(postgres_json(emu, db))
    if not rest and method == "DELETE":
        return recovery.delete_postgres(emu, db)
    if rest == ["connection-info"] and method == "GET":
        return JSONResponse(connection_info(db))
    if rest == ["export"] and method == "POST":
        export(emu, db)
        return Response(status_code=202)
    if rest == ["export"] and method == "GET":
        return JSONResponse([{k: v for k, v in e.items() if not k.startswith("_")} for e in reversed(db.exports)])
    if rest == ["recovery"]:
        return recovery.recovery_routes(emu, method, db, body) or _no_route(method, parts)
    return _no_route(method, parts)


def cron_routes(emu: Emulator, method: str, parts: list[str], request: Request, body: dict) -> Response:
    """``POST /cron-jobs/{id}/runs`` (a new run, any active one cancelled: 200 cronJobRun) and ``DELETE`` (204)."""
    from deploypipe.emulator import cron

    if len(parts) != 3 or parts[2] != "runs" or method not in ("POST", "DELETE"):
        return _no_route(method, parts)
    service = emu.service(parts[1])
    if service is None or service.spec.type != "cron":
        return error(404, f"cron job {parts[1]} not found" + (f" (service {service.name} is not a cron job)"
                                                                if service is not None else ""))
    if method == "DELETE":
        cron.cancel(emu, service)
        return Response(status_code=204)
    return JSONResponse(cron.trigger(emu, service).to_json())


def _no_route(method: str, parts: list[str]) -> Response:
    return error(404, f"no route for {method} /v1/{'/'.join(parts)}")


_ROOTS: dict[str, Callable[..., Response]] = {"services": service_routes, "postgres": postgres_routes,
                                              "cron-jobs": cron_routes}


_READS: dict[tuple[str, ...], Callable[[Emulator, Request], Response]] = {
    ("services",): list_services,
    ("metrics", "http-requests"): observability.http_requests,
    ("metrics", "http-latency"): observability.http_latency,
    ("logs",): observability.list_logs,
}


def dispatch(emu: Emulator, method: str, parts: list[str], request: Request, body: dict) -> Response:
    from deploypipe.emulator import cron

    cron.advance(emu)  # runs the schedule made due and simulated runs whose time is up, before any answer
    read = _READS.get(tuple(parts))
    if read is not None and method == "GET":
        return read(emu, request)
    handler = _ROOTS.get(parts[0])
    if handler is None or (parts[0] in ("services", "cron-jobs") and len(parts) < 2):
        return _no_route(method, parts)
    return handler(emu, method, parts, request, body)
