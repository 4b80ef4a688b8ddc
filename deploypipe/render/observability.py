"""Render's HTTP metrics and logs: one GET per call, answered as typed time series and log pages.

    http_request_metrics  GET /metrics/http-requests   request counts per bucket, by status code (or host)
    http_latency_metrics  GET /metrics/http-latency    a latency quantile per bucket (milliseconds)
    list_logs             GET /logs                    one page of logs; the caller pages with next_start/end_time

Each function sends one logical request (retried like any GET under the
client's policy; ``client.with_retry(RetryPolicy(attempts=1))`` makes it one
HTTP request exactly) and never pages by itself, so a caller that paces its
requests (one metrics and one logs request per interval) stays in control.
Arguments Render would refuse (resolution below 30 s, a limit outside 1..100)
are refused here before spending a request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Mapping, Sequence

from deploypipe.errors import ProviderError
from deploypipe.render.api import RenderApi, iso_time
from deploypipe.render.models import parse_time

__all__ = ["MIN_RESOLUTION_S", "LogEntry", "LogPage", "TimeSeries", "http_latency_metrics", "http_request_metrics",
           "list_logs", "parse_time"]

MIN_RESOLUTION_S = 30  # the spec's minimum for resolutionSeconds

TimeLike = datetime | float | str


@dataclass(frozen=True)
class TimeSeries:
    """One time series: its labels (``statusCode``, ``host``, ``quantile``, ...), (time, value) points, unit."""

    labels: dict[str, str]
    points: list[tuple[datetime, float]]
    unit: str = ""

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TimeSeries:
        labels = {str(item.get("field")): str(item.get("value")) for item in data.get("labels") or []
                  if isinstance(item, Mapping)}
        points = [(parse_time(str(p["timestamp"])), float(p["value"])) for p in data.get("values") or []
                  if isinstance(p, Mapping) and p.get("timestamp") is not None and p.get("value") is not None]
        return cls(labels=labels, points=sorted(points, key=lambda point: point[0]), unit=str(data.get("unit") or ""))

    def total(self) -> float:
        """The sum of the values (for request counts: the requests in the window)."""
        return sum(value for _, value in self.points)


@dataclass(frozen=True)
class LogEntry:
    """One log line with Render's labels (``resource``, ``instance``, ``type``, ``level``, ``method``, ...)."""

    id: str
    timestamp: datetime
    message: str
    labels: dict[str, str]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LogEntry:
        labels = {str(item.get("name")): str(item.get("value")) for item in data.get("labels") or []
                  if isinstance(item, Mapping)}
        return cls(id=str(data.get("id") or ""), timestamp=parse_time(str(data["timestamp"])),
                   message=str(data.get("message") or ""), labels=labels)

    @property
    def type(self) -> str | None:
        """``app``, ``request`` or ``build`` (None when Render gave no type)."""
        return self.labels.get("type")

    @property
    def status_code(self) -> int | None:
        """A request log's status code."""
        value = self.labels.get("statusCode")
        return int(value) if value and value.isdigit() else None


@dataclass(frozen=True)
class LogPage:
    """One page of logs; while ``has_more``, ask again with ``next_start_time`` / ``next_end_time``."""

    logs: list[LogEntry]
    has_more: bool
    next_start_time: datetime
    next_end_time: datetime

    @classmethod
    def from_json(cls, data: Any, where: str) -> LogPage:
        if not isinstance(data, Mapping) or not isinstance(data.get("logs"), list):
            raise ProviderError(f"expected {{hasMore, nextStartTime, nextEndTime, logs}}, got {type(data).__name__}",
                                where=where)
        return cls(logs=[LogEntry.from_json(entry) for entry in data["logs"] if isinstance(entry, Mapping)],
                   has_more=bool(data.get("hasMore")), next_start_time=parse_time(str(data["nextStartTime"])),
                   next_end_time=parse_time(str(data["nextEndTime"])))


def _many(value: str | Sequence[str] | None) -> list[str] | None:
    if value is None:
        return None
    return [value] if isinstance(value, str) else [str(v) for v in value]


def _window(start: TimeLike, end: TimeLike, resolution_s: float) -> dict[str, Any]:
    if resolution_s < MIN_RESOLUTION_S:
        raise ValueError(f"resolution_s must be at least {MIN_RESOLUTION_S} (Render's minimum), got {resolution_s:g}")
    return {"startTime": iso_time(start), "endTime": iso_time(end), "resolutionSeconds": resolution_s}


def _series(data: Any, where: str) -> list[TimeSeries]:
    if not isinstance(data, list):
        raise ProviderError(f"expected a JSON list of time series, got {type(data).__name__}", where=where)
    return [TimeSeries.from_json(item) for item in data if isinstance(item, Mapping)]


def http_request_metrics(api: RenderApi, resource: str, *, start: TimeLike, end: TimeLike, resolution_s: float,
                         aggregate_by: Literal["statusCode", "host"] | None = "statusCode",
                         path: str | Sequence[str] | None = None,
                         host: str | Sequence[str] | None = None) -> list[TimeSeries]:
    """Request counts of ``resource`` per ``resolution_s`` bucket in [start, end], one series per status code
    (``aggregate_by="host"``: per host; None: one series); ``path``/``host`` filter (several are ORed)."""
    params = {**_window(start, end, resolution_s), "resource": resource, "aggregateBy": aggregate_by,
              "path": _many(path), "host": _many(host)}
    data = api.call("GET", "/metrics/http-requests", params=_present(params), resource=f"resource {resource}")
    return _series(data, "GET /metrics/http-requests")


def http_latency_metrics(api: RenderApi, resource: str, *, start: TimeLike, end: TimeLike, resolution_s: float,
                         quantile: float | Sequence[float], path: str | Sequence[str] | None = None,
                         host: str | Sequence[str] | None = None) -> list[TimeSeries]:
    """Latency quantile(s) of ``resource`` in milliseconds per bucket, one series per quantile (label ``quantile``)."""
    quantiles = [quantile] if isinstance(quantile, int | float) else list(quantile)
    if not quantiles or any(not 0 < q <= 1 for q in quantiles):
        raise ValueError(f"quantile must be in (0, 1], got {quantile!r}")
    params = {**_window(start, end, resolution_s), "resource": resource, "quantile": quantiles,
              "path": _many(path), "host": _many(host)}
    data = api.call("GET", "/metrics/http-latency", params=_present(params), resource=f"resource {resource}")
    return _series(data, "GET /metrics/http-latency")


def list_logs(api: RenderApi, owner_id: str, *, resources: str | Sequence[str], start: TimeLike, end: TimeLike,
              types: Sequence[str] | None = None, status_codes: Sequence[str | int] | None = None,
              paths: Sequence[str] | None = None, methods: Sequence[str] | None = None,
              instances: Sequence[str] | None = None, levels: Sequence[str] | None = None,
              hosts: Sequence[str] | None = None, text: str | Sequence[str] | None = None,
              direction: Literal["backward", "forward"] = "backward", limit: int = 100) -> LogPage:
    """One page of logs of ``resources`` in [start, end] (backward: newest first), filtered by Render's labels;
    filter values may use Render's wildcards (``5*``) and regular expressions."""
    if not 1 <= limit <= 100:
        raise ValueError(f"limit must be between 1 and 100 (Render's maximum), got {limit}")
    params = {"ownerId": owner_id, "resource": _many(resources), "startTime": iso_time(start),
              "endTime": iso_time(end), "direction": direction, "limit": limit, "type": _many(types),
              "statusCode": [str(code) for code in status_codes] if status_codes is not None else None,
              "path": _many(paths), "method": _many(methods), "instance": _many(instances), "level": _many(levels),
              "host": _many(hosts), "text": _many(text)}
    return LogPage.from_json(api.call("GET", "/logs", params=_present(params)), "GET /logs")


def _present(params: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in params.items() if value not in (None, [], ())}
