"""A seeded simulated service that implements ``TrafficSource`` on a fake clock, for tests and the bench.

Requests arrive as a Poisson stream over a set of routes; each route fails with its own probability before
and after the switch and answers in a log-normal time around its own median (``Route.latency_ms``, default the
scenario's), scaled after the switch by the scenario's drift and the route's ``latency_factor``. Data reaches
the "API" late, as on Render: each request shows in the metrics up to ``metrics_lag_s`` and in the logs up to
``logs_lag_s`` after it was answered; log pages are Render's (newest first, ``next`` for the older rest). Every
call is recorded with its kind and time, ``failures`` makes the next calls of a kind raise a transient error,
and ``log_reads`` counts how often each request was returned by the logs. Standard library only.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from deploypipe.analysis.latency import quantile
from deploypipe.analysis.source import CountBucket, LatencyBucket, LogPage, RequestLogEntry, Window
from deploypipe.errors import TransientProviderError

__all__ = ["Route", "Scenario", "SimulatedService"]


@dataclass(frozen=True)
class Route:
    """One endpoint: its share of the traffic, its failure probability before and after the switch, its median
    response time (None: the scenario's) and the factor it is slower by after the switch."""

    method: str
    path: str
    share: float
    error_rate_before: float = 0.005
    error_rate_after: float = 0.005
    latency_ms: float | None = None
    latency_factor: float = 1.0


@dataclass(frozen=True)
class Scenario:
    """The traffic of one simulated release (times in epoch seconds, latencies in milliseconds)."""

    routes: tuple[Route, ...]
    switched_at: float
    rate_per_s: float = 5.0
    starts_at: float | None = None  # default: 1 hour before the switch
    ends_at: float | None = None  # default: 1 hour after the switch
    latency_ms_before: float = 80.0
    latency_ms_after: float = 80.0  # every route's median scales by latency_ms_after / latency_ms_before
    latency_sigma: float = 0.5
    metrics_lag_s: float = 0.0
    logs_lag_s: float = 0.0
    traffic_before: bool = True
    seed: int = 0


@dataclass
class SimulatedService:
    """``TrafficSource`` over a generated request stream; ``calls`` lists ``(kind, time)`` of every call."""

    scenario: Scenario
    clock: Callable[[], float]
    failures: dict[str, int] = field(default_factory=dict)
    calls: list[tuple[str, float]] = field(default_factory=list)
    log_reads: Counter[int] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        s = self.scenario
        rng = random.Random(s.seed)
        start = s.starts_at if s.starts_at is not None else s.switched_at - 3600
        end = s.ends_at if s.ends_at is not None else s.switched_at + 3600
        if not s.traffic_before:
            start = max(start, s.switched_at)
        indexes, cumulative = range(len(s.routes)), list(itertools.accumulate(r.share for r in s.routes))
        drift = s.latency_ms_after / s.latency_ms_before
        self.at: list[float] = []
        now, expovariate = start, rng.expovariate
        while (now := now + expovariate(s.rate_per_s)) < end:
            self.at.append(now)
        count = len(self.at)
        self.route: list[int] = rng.choices(indexes, cum_weights=cumulative, k=count)
        self.status: list[int] = []
        self.latency_ms: list[float] = []
        for at, index in zip(self.at, self.route, strict=True):
            route, after = s.routes[index], at >= s.switched_at
            failing = route.error_rate_after if after else route.error_rate_before
            median = (route.latency_ms or s.latency_ms_before) * (drift * route.latency_factor if after else 1.0)
            self.status.append(500 if rng.random() < failing else 200)
            self.latency_ms.append(median * math.exp(rng.gauss(0.0, s.latency_sigma)))
        self.metrics_at: list[float] = [at + rng.random() * s.metrics_lag_s for at in self.at]
        self.logs_at: list[float] = [at + rng.random() * s.logs_lag_s for at in self.at]
        self._buckets: dict[int, dict[float, tuple[list[float], list[float]]]] = {}

    # -- bookkeeping ----------------------------------------------------------------------------
    def _record(self, kind: str, what: str) -> None:
        self.calls.append((kind, self.clock()))
        if self.failures.get(kind, 0) > 0:
            self.failures[kind] -= 1
            raise TransientProviderError(f"503 from the simulated Render ({what})", where=f"GET {what}",
                                         status_code=503, sent=True)

    def calls_of(self, kind: str) -> list[float]:
        return [at for k, at in self.calls if k == kind]

    def _range(self, window: Window) -> range:
        return range(bisect.bisect_left(self.at, window.start), bisect.bisect_left(self.at, window.end))

    def _grid(self, resolution_s: int) -> dict[float, tuple[list[float], list[float]]]:
        """Per bucket start: the sorted times all its requests, and its 5xx answers, reach the metrics."""
        if resolution_s not in self._buckets:
            grid: dict[float, tuple[list[float], list[float]]] = {}
            for i, at in enumerate(self.at):
                seen, failed = grid.setdefault(math.floor(at / resolution_s) * resolution_s, ([], []))
                seen.append(self.metrics_at[i])
                if self.status[i] >= 500:
                    failed.append(self.metrics_at[i])
            for seen, failed in grid.values():
                seen.sort()
                failed.sort()
            self._buckets[resolution_s] = grid
        return self._buckets[resolution_s]

    # -- TrafficSource --------------------------------------------------------------------------
    def request_counts(self, window: Window, resolution_s: int) -> Sequence[CountBucket]:
        self._record("metrics", "/v1/metrics/http-requests")
        now, buckets = self.clock(), []
        for start, (seen, failed) in sorted(self._grid(resolution_s).items()):
            if window.start <= start < window.end:
                requests = bisect.bisect_right(seen, now)
                if requests:
                    buckets.append(CountBucket(float(start), requests, bisect.bisect_right(failed, now)))
        return buckets

    def latency(self, window: Window, resolution_s: int, quantile_: float) -> Sequence[LatencyBucket]:
        self._record("metrics", "/v1/metrics/http-latency")
        now, values = self.clock(), dict[float, list[float]]()
        for i in self._range(window):
            if self.metrics_at[i] <= now:
                values.setdefault(math.floor(self.at[i] / resolution_s) * resolution_s, []).append(self.latency_ms[i])
        return [LatencyBucket(float(start), quantile(ms, quantile_) or 0.0) for start, ms in sorted(values.items())]

    def request_logs(self, window: Window, limit: int) -> LogPage:
        self._record("logs", "/v1/logs")
        now, routes, picked = self.clock(), self.scenario.routes, []
        for i in reversed(self._range(window)):
            if self.logs_at[i] <= now:
                picked.append(i)
                if len(picked) > limit:
                    break
        page, has_more = picked[:limit], len(picked) > limit
        self.log_reads.update(page)
        entries = tuple(RequestLogEntry(at=self.at[i], method=routes[self.route[i]].method,
                                        path=routes[self.route[i]].path, status=self.status[i],
                                        ms=float(round(self.latency_ms[i]))) for i in page)
        rest = Window(window.start, self.at[page[-1]]) if has_more else None
        return LogPage(entries, has_more=has_more, next=rest)

    def requests_in(self, window: Window) -> range:
        """Indexes of the requests answered in ``window`` (for counting what the logs returned)."""
        return self._range(window)
