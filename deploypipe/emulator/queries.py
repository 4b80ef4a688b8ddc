"""Render's metrics and log queries over recorded telemetry: time buckets, quantiles, label filters, time-window pages.

Metrics (``/metrics/http-requests``, ``/metrics/http-latency``): requests in
[start, end] are grouped into buckets aligned to multiples of the resolution
(a bucket's timestamp is its start); only buckets holding requests appear.
Request counts are one series per status code (``aggregateBy=statusCode``),
per host (``host``) or one series (no aggregation), unit ``unitless``; latency
is one series per asked quantile (label ``quantile``), nearest-rank, unit
``ms``. (Series labels and units follow the values in Render's own clients'
test data; the spec does not list them.)

Logs (``/logs``): label filters are ORed within a label and ANDed across
labels; a value is matched exactly, with ``*`` wildcards, or as a regular
expression written ``/.../`` (``text`` also matches a plain substring).
Pages are time windows: ``backward`` returns the newest lines first and the
next window ends one microsecond before the oldest line returned; ``forward``
the reverse.
"""

from __future__ import annotations

import fnmatch
import itertools
import math
import re
from collections import defaultdict
from typing import Any, Callable, Iterable, Mapping, Sequence

from deploypipe.emulator.ids import iso
from deploypipe.emulator.telemetry import LogRec, RequestRec, iso_us

__all__ = ["latency_series", "log_page", "matcher", "request_series"]

COUNT_UNIT = "unitless"
LATENCY_UNIT = "ms"


def _bucket(at: float, resolution_s: float) -> float:
    return math.floor(at / resolution_s) * resolution_s


def _series(labels: list[dict[str, str]], points: Mapping[float, float], unit: str) -> dict[str, Any]:
    return {"labels": labels, "unit": unit,
            "values": [{"timestamp": iso(ts), "value": value, "unit": unit} for ts, value in sorted(points.items())]}


def request_series(records: Iterable[RequestRec], *, resolution_s: float,
                   aggregate_by: str | None) -> list[dict[str, Any]]:
    """Request counts per bucket, one series per value of ``aggregate_by`` (statusCode | host | None)."""
    groups: dict[str, dict[float, float]] = defaultdict(lambda: defaultdict(float))
    for rec in records:
        key = str(rec.status) if aggregate_by == "statusCode" else rec.host if aggregate_by == "host" else ""
        groups[key][_bucket(rec.at, resolution_s)] += 1
    return [_series([{"field": aggregate_by, "value": key}] if aggregate_by else [], points, COUNT_UNIT)
            for key, points in sorted(groups.items())]


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def latency_series(records: Iterable[RequestRec], *, resolution_s: float,
                   quantiles: Sequence[float]) -> list[dict[str, Any]]:
    """One series per quantile: the bucket's latency at that quantile (nearest rank), in milliseconds."""
    buckets: dict[float, list[float]] = defaultdict(list)
    for rec in records:
        buckets[_bucket(rec.at, resolution_s)].append(rec.latency_ms)
    return [_series([{"field": "quantile", "value": f"{q:g}"}],
                    {ts: round(_quantile(values, q), 3) for ts, values in buckets.items()}, LATENCY_UNIT)
            for q in quantiles]


def _test(pattern: str, substring: bool) -> Callable[[str], bool]:
    if len(pattern) > 2 and pattern.startswith("/") and pattern.endswith("/"):
        regex = re.compile(pattern[1:-1])
        return lambda value: regex.search(value) is not None
    if "*" in pattern:
        return lambda value: fnmatch.fnmatchcase(value, pattern)
    if substring:
        return lambda value: pattern.lower() in value.lower()
    return lambda value: value == pattern


def matcher(patterns: Sequence[str], *, substring: bool = False) -> Callable[[str | None], bool]:
    """Whether a label value matches any of ``patterns`` (exact, ``*`` wildcard or ``/regex/``)."""
    tests = [_test(pattern, substring) for pattern in patterns]
    return lambda value: value is not None and any(test(value) for test in tests)


def log_page(lines: Sequence[LogRec], filters: Mapping[str, Sequence[str]], *, start_us: int, end_us: int,
             direction: str, limit: int) -> dict[str, Any]:
    """One page of ``lines`` (oldest first, already limited to the window and resources) in Render's shape."""
    tests = {name: matcher(values, substring=name == "text") for name, values in filters.items() if values}

    def wanted(line: LogRec) -> bool:
        return all(test(line.message if name == "text" else line.label(name)) for name, test in tests.items())

    matching = (line for line in (reversed(lines) if direction == "backward" else lines) if wanted(line))
    page = list(itertools.islice(matching, limit + 1))
    page, has_more = page[:limit], len(page) > limit
    if direction == "backward":
        next_start, next_end = start_us, (page[-1].at_us - 1 if page else start_us)
    else:
        next_start, next_end = (page[-1].at_us + 1 if page else end_us), end_us
    return {"hasMore": has_more, "nextStartTime": iso_us(next_start), "nextEndTime": iso_us(next_end),
            "logs": [{"id": line.id, "message": line.message, "timestamp": iso_us(line.at_us),
                      "labels": [{"name": name, "value": value} for name, value in line.labels]} for line in page]}
