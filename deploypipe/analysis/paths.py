"""Per-path tallies from request logs, for the new release and its baseline, and the one-line path message.

Paths are grouped by route: the method plus the path without its query string, with segments that look like
identifiers (all digits, UUIDs, long hex) replaced by ``{id}``, so ``GET /notes/17`` and ``GET /notes/18`` are
tested together instead of splitting the traffic into paths too thin to judge. Each route keeps its requests'
response times (when the log lines carry them) for the latency tests. Routes of the new release are kept in the
order they first appeared: that order, which does not depend on any request's outcome, sets each route's share
of the significance.
"""

from __future__ import annotations

import bisect
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache

from deploypipe.analysis.source import RequestLogEntry

__all__ = ["PathCounts", "PathTally", "clock_time", "path_message", "route_of"]

_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_ID_SEGMENT = re.compile(rf"^(\d+|[0-9a-fA-F]{{16,}}|{_UUID})$")


@lru_cache(maxsize=65536)
def route_of(method: str, path: str) -> str:
    """``POST /notes/42?x=1`` -> ``POST /notes/{id}``."""
    bare = path.split("?", 1)[0].split("#", 1)[0] or "/"
    segments = ["{id}" if _ID_SEGMENT.match(segment) else segment for segment in bare.split("/")]
    return f"{method.upper()} {'/'.join(segments)}"


def clock_time(at: float) -> str:
    """``12:03:07``: the UTC time of day of an epoch timestamp, as Render's dashboard and logs show it."""
    return datetime.fromtimestamp(at, UTC).strftime("%H:%M:%S")


@dataclass
class PathCounts:
    """Requests and 5xx answers of one route on one side (new release or baseline)."""

    requests: int = 0
    errors: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    first_error_at: float | None = None
    ms: list[float] = field(default_factory=list)
    _ordered: list[float] | None = field(default=None, repr=False, compare=False)

    def add(self, entry: RequestLogEntry) -> None:
        self.requests += 1
        if entry.ms is not None:
            self.ms.append(entry.ms)
            if self._ordered is not None:
                bisect.insort(self._ordered, entry.ms)
        if entry.status >= 500:
            self.errors += 1
            self.statuses[entry.status] += 1
            if self.first_error_at is None or entry.at < self.first_error_at:
                self.first_error_at = entry.at

    @property
    def success_rate(self) -> float | None:
        return None if self.requests == 0 else 1 - self.errors / self.requests

    def sorted_ms(self) -> list[float]:
        """The response times in ascending order (sorted once, then kept in order)."""
        if self._ordered is None or len(self._ordered) != len(self.ms):
            self._ordered = sorted(self.ms)
        return self._ordered

    def status_text(self) -> str:
        """``500`` when every failure had that status, ``5xx`` when they differ."""
        return str(next(iter(self.statuses))) if len(self.statuses) == 1 else "5xx"


@dataclass
class PathTally:
    """Request-log counts per route for the new release and the baseline (``baseline_read`` once it was read
    whole); ``behind`` while the new release's logs were not all read yet (the request budget ran out)."""

    new: dict[str, PathCounts] = field(default_factory=dict)
    baseline: dict[str, PathCounts] = field(default_factory=dict)
    baseline_read: bool = False
    behind: bool = False
    total_new: PathCounts = field(default_factory=PathCounts)
    total_baseline: PathCounts = field(default_factory=PathCounts)

    def add_new(self, entries: Iterable[RequestLogEntry]) -> None:
        for entry in sorted(entries, key=lambda e: e.at):
            self.new.setdefault(route_of(entry.method, entry.path), PathCounts()).add(entry)
            self.total_new.add(entry)

    def add_baseline(self, entries: Iterable[RequestLogEntry]) -> None:
        for entry in entries:
            self.baseline.setdefault(route_of(entry.method, entry.path), PathCounts()).add(entry)
            self.total_baseline.add(entry)

    def baseline_of(self, route: str) -> PathCounts:
        return self.baseline.get(route) or PathCounts()


def path_message(route: str, new: PathCounts, baseline: PathCounts | None) -> str:
    """``POST /notes: 41 of 43 answered 500 since 12:03:07 (baseline 0 of 380)``; ``no baseline`` without one."""
    since = f" since {clock_time(new.first_error_at)}" if new.first_error_at is not None else ""
    before = ("no baseline" if baseline is None or baseline.requests == 0
              else f"baseline {baseline.errors} of {baseline.requests}")
    return f"{route}: {new.errors} of {new.requests} answered {new.status_text()}{since} ({before})"
