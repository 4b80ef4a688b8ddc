"""Route handlers of Render's metrics and logs operations: query parameters checked as the spec says, then answered.

    GET /metrics/http-requests   startTime, endTime, resolutionSeconds (>= 30, default 60), resource (ORed),
                                 host, path (ORed), aggregateBy (statusCode | host)
    GET /metrics/http-latency    the same without aggregateBy, with quantile (ORed; default 0.95 here)
    GET /logs                    ownerId*, resource*, startTime, endTime, direction, limit (1..100, default 20),
                                 instance, host, statusCode, method, level, type, text, path (wildcards, /regex/)

Times are ISO 8601 date-times (or epoch seconds, which the spec's descriptions
mention); the window defaults to the last hour. An unknown metrics resource is
a 400 (the spec lists no 404 for metrics); logs of an unknown resource are empty.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from deploypipe.emulator.queries import latency_series, log_page, request_series
from deploypipe.emulator.shapes import error, multi
from deploypipe.emulator.state import Emulator

__all__ = ["http_latency", "http_requests", "list_logs"]

MIN_RESOLUTION_S = 30.0  # the spec's minimum for resolutionSeconds
DEFAULT_RESOLUTION_S = 60.0
DEFAULT_QUANTILE = 0.95  # (inference) the spec gives no default quantile
DEFAULT_WINDOW_S = 3600.0
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_LOG_FILTERS = ("instance", "host", "statusCode", "method", "level", "type", "text", "path")


class _Bad(ValueError):
    """A query parameter Render would refuse: answered 400 with this message."""


def _us(value: str) -> int:
    """Whole microseconds since the epoch from an ISO 8601 date-time or epoch seconds."""
    try:
        return round(float(value) * 1e6)
    except ValueError:
        pass
    parsed = datetime.fromisoformat(value)
    parsed = parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    return (parsed - _EPOCH) // timedelta(microseconds=1)


def _window_us(emu: Emulator, request: Request) -> tuple[int, int]:
    raw = {name: request.query_params.get(name) for name in ("startTime", "endTime")}
    try:
        times = {name: _us(value) for name, value in raw.items() if value}
    except ValueError:
        raise _Bad("startTime/endTime must be ISO 8601 date-times, e.g. 2026-01-31T12:00:00Z") from None
    end = times.get("endTime", round(emu.clock() * 1e6))
    start = times.get("startTime", end - round(DEFAULT_WINDOW_S * 1e6))
    if start > end:
        raise _Bad(f"startTime {raw['startTime']} is after endTime {raw['endTime'] or 'now'}")
    return start, end


def _resolution(request: Request) -> float:
    raw = request.query_params.get("resolutionSeconds")
    try:
        value = float(raw) if raw is not None else DEFAULT_RESOLUTION_S
    except ValueError:
        raise _Bad(f"resolutionSeconds must be a number, got {raw!r}") from None
    if value < MIN_RESOLUTION_S:
        raise _Bad(f"resolutionSeconds must be at least {MIN_RESOLUTION_S:g}, got {raw}")
    return value


def _resources(emu: Emulator, request: Request) -> set[str]:
    wanted = set(multi(request, "resource") + multi(request, "service"))
    if not wanted:
        raise _Bad("resource is required: the id of a service to query (srv-...)")
    unknown = sorted(wanted - set(emu.services))
    if unknown:
        raise _Bad(f"resource {', '.join(unknown)} is not a service of this workspace")
    return wanted


def _metric_records(emu: Emulator, request: Request) -> tuple[list, float]:
    start_us, end_us = _window_us(emu, request)
    resolution = _resolution(request)
    records = emu.telemetry.requests(_resources(emu, request), start_us / 1e6, end_us / 1e6)
    paths, hosts = set(multi(request, "path")), set(multi(request, "host"))
    return [r for r in records if (not paths or r.path in paths) and (not hosts or r.host in hosts)], resolution


def http_requests(emu: Emulator, request: Request) -> Response:
    aggregate_by = request.query_params.get("aggregateBy")
    try:
        if aggregate_by not in (None, "statusCode", "host"):
            raise _Bad(f"aggregateBy must be statusCode or host, got {aggregate_by!r}")
        records, resolution = _metric_records(emu, request)
    except _Bad as exc:
        return error(400, str(exc))
    return JSONResponse(request_series(records, resolution_s=resolution, aggregate_by=aggregate_by))


def http_latency(emu: Emulator, request: Request) -> Response:
    raw = multi(request, "quantile")
    try:
        try:
            quantiles = [float(q) for q in raw] or [DEFAULT_QUANTILE]
        except ValueError:
            raise _Bad(f"quantile must be a number between 0 and 1, got {raw}") from None
        if any(not 0 < q <= 1 for q in quantiles):
            raise _Bad(f"quantile must be between 0 and 1, got {raw}")
        records, resolution = _metric_records(emu, request)
    except _Bad as exc:
        return error(400, str(exc))
    return JSONResponse(latency_series(records, resolution_s=resolution, quantiles=quantiles))


def list_logs(emu: Emulator, request: Request) -> Response:
    params = request.query_params
    owner, resources = params.get("ownerId"), set(multi(request, "resource"))
    direction, raw_limit = params.get("direction", "backward"), params.get("limit", "20")
    try:
        if not owner:
            raise _Bad("ownerId is required: the id of the workspace (tea-...) that owns the resources")
        if not resources:
            raise _Bad("resource is required: the ids of the services or jobs whose logs to list")
        if direction not in ("backward", "forward"):
            raise _Bad(f"direction must be backward or forward, got {direction!r}")
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 100:
            raise _Bad(f"limit must be an integer between 1 and 100, got {raw_limit!r}")
        start_us, end_us = _window_us(emu, request)
    except _Bad as exc:
        return error(400, str(exc))
    if owner != emu.owner_id:
        return error(404, f"owner {owner} not found")
    lines = emu.telemetry.logs(resources, start_us, end_us)
    filters = {name: multi(request, name) for name in _LOG_FILTERS}
    try:
        page = log_page(lines, filters, start_us=start_us, end_us=end_us, direction=direction, limit=int(raw_limit))
    except re.error as exc:
        return error(400, f"a /regular expression/ filter does not compile: {exc}")
    return JSONResponse(page)
