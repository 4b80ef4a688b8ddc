"""A seeded simulated service that implements ``TrafficSource`` on a fake clock, for tests and the bench.

Requests arrive as a Poisson stream over a set of routes; each route fails with its own probability before
and after the switch; latencies are log-normal. Data reaches the "API" late, as on Render: each request shows
in the metrics up to ``metrics_lag_s`` and in the logs up to ``logs_lag_s`` after it was answered. Every call
is recorded with its kind and time, and ``failures`` makes the next calls of a kind raise a transient error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from deploypipe.analysis.source import (
    CountBucket,
    LatencyBucket,
    LogPage,
    RequestLogEntry,
    Window,
)
from deploypipe.errors import TransientProviderError

__all__ = ["Route", "Scenario", "SimulatedService"]


@dataclass(frozen=True)
class Route:
    """One endpoint: its share of the traffic and its failure probability before and after the switch."""

    method: str
    path: str
    share: float
    error_rate_before: float = 0.005
    error_rate_after: float = 0.005


@dataclass(frozen=True)
class Scenario:
    """The traffic of one simulated release (times in epoch seconds, latencies in milliseconds)."""

    routes: tuple[Route, ...]
    switched_at: float
    rate_per_s: float = 5.0
    starts_at: float | None = None  # default: 1 hour before the switch
    ends_at: float | None = None  # default: 1 hour after the switch
    latency_ms_before: float = 80.0
    latency_ms_after: float = 80.0
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

    def __post_init__(self) -> None:
        s = self.scenario
        rng = np.random.default_rng(s.seed)
        start = s.starts_at if s.starts_at is not None else s.switched_at - 3600
        end = s.ends_at if s.ends_at is not None else s.switched_at + 3600
        if not s.traffic_before:
            start = max(start, s.switched_at)
        count = int(rng.poisson(s.rate_per_s * (end - start)))
        self.at = np.sort(rng.uniform(start, end, count))
        shares = np.array([r.share for r in s.routes], dtype=float)
        self.route = rng.choice(len(s.routes), size=count, p=shares / shares.sum())
        after = self.at >= s.switched_at
        before_rates = np.array([r.error_rate_before for r in s.routes])
        after_rates = np.array([r.error_rate_after for r in s.routes])
        failing = np.where(after, after_rates[self.route], before_rates[self.route])
        self.status = np.where(rng.uniform(size=count) < failing, 500, 200)
        median = np.where(after, s.latency_ms_after, s.latency_ms_before)
        self.latency_ms = median * rng.lognormal(0.0, s.latency_sigma, count)
        self.metrics_at = self.at + rng.uniform(0, s.metrics_lag_s, count) if s.metrics_lag_s else self.at
        self.logs_at = self.at + rng.uniform(0, s.logs_lag_s, count) if s.logs_lag_s else self.at

    # -- bookkeeping ----------------------------------------------------------------------------
    def _record(self, kind: str, what: str) -> None:
        self.calls.append((kind, self.clock()))
        if self.failures.get(kind, 0) > 0:
            self.failures[kind] -= 1
            raise TransientProviderError(f"503 from the simulated Render ({what})", where=f"GET {what}",
                                         status_code=503, sent=True)

    def calls_of(self, kind: str) -> list[float]:
        return [at for k, at in self.calls if k == kind]

    def _visible(self, window: Window, seen_at: np.ndarray) -> np.ndarray:
        return (self.at >= window.start) & (self.at < window.end) & (seen_at <= self.clock())

    # -- TrafficSource --------------------------------------------------------------------------
    def request_counts(self, window: Window, resolution_s: int) -> Sequence[CountBucket]:
        self._record("metrics", "/v1/metrics/http-requests")
        mask = self._visible(window, self.metrics_at)
        starts = np.floor(self.at[mask] / resolution_s) * resolution_s
        errors = self.status[mask] >= 500
        buckets = []
        for bucket in np.unique(starts):
            inside = starts == bucket
            buckets.append(CountBucket(float(bucket), int(inside.sum()), int(errors[inside].sum())))
        return buckets

    def latency(self, window: Window, resolution_s: int, quantile: float) -> Sequence[LatencyBucket]:
        self._record("metrics", "/v1/metrics/http-latency")
        mask = self._visible(window, self.metrics_at)
        starts = np.floor(self.at[mask] / resolution_s) * resolution_s
        values = self.latency_ms[mask]
        return [LatencyBucket(float(bucket), float(np.quantile(values[starts == bucket], quantile)))
                for bucket in np.unique(starts)]

    def request_logs(self, window: Window, limit: int) -> LogPage:
        self._record("logs", "/v1/logs")
        picked = np.flatnonzero(self._visible(window, self.logs_at))
        newest = picked[::-1][:limit]
        routes = self.scenario.routes
        entries = tuple(RequestLogEntry(at=float(self.at[i]), method=routes[self.route[i]].method,
                                        path=routes[self.route[i]].path, status=int(self.status[i]))
                        for i in newest)
        return LogPage(entries, has_more=len(picked) > limit)
