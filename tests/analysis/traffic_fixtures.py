"""Builders for the traffic-analysis tests: evidence from plain numbers, request-log entries, fast configs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from deploypipe.analysis import Evidence, RequestLogEntry, TrafficConfig, plan_windows
from deploypipe.analysis.simulation import Route, Scenario, SimulatedService
from deploypipe.testing import FakeClock

__all__ = ["FAST", "ROUTES", "SWITCH", "BoundedClock", "at_utc", "entries", "evidence", "service"]

SWITCH = datetime(2026, 3, 4, 12, 3, 0, tzinfo=UTC).timestamp()

# Local-Render pacing: a look every 5 s, 5 s buckets, one minute of traffic after the switch.
# Logs up to 3 s late, two log pages a second, a baseline widened up to 15 minutes.
FAST = TrafficConfig(interval_s=5, resolution_s=5, window_s=60, baseline_s=300, max_baseline_s=900, late_data_s=15,
                     min_requests=100, logs_lag_s=3, logs_requests_per_min=120)

ROUTES = (
    Route("GET", "/", 0.55),
    Route("GET", "/notes", 0.25),
    Route("POST", "/notes", 0.15),
    Route("GET", "/health", 0.05),
)


class BoundedClock(FakeClock):
    """A fake clock that fails the test instead of looping forever once an hour of simulated time has passed."""

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds)
        assert self.now - SWITCH <= 3600, f"still observing {self.now - SWITCH:.0f} s after the switch"

    __call__ = sleep


def at_utc(hh_mm_ss: str) -> float:
    """Epoch seconds of a time of day on the test day (UTC)."""
    hour, minute, second = (int(part) for part in hh_mm_ss.split(":"))
    return datetime(2026, 3, 4, hour, minute, second, tzinfo=UTC).timestamp()


def entries(route: str, requests: int, errors: int, *, start: float, status: int = 500, step_s: float = 0.1,
            ms: Sequence[float] = ()) -> list[RequestLogEntry]:
    """``requests`` log entries of ``route`` (``"POST /notes"``) from ``start``; the first ``errors`` failed; the
    response times cycle through ``ms`` (none without)."""
    method, path = route.split(" ", 1)
    return [RequestLogEntry(at=start + i * step_s, method=method, path=path, status=status if i < errors else 200,
                            ms=ms[i % len(ms)] if ms else None)
            for i in range(requests)]


def evidence(requests: int, errors: int, baseline_requests: int = 0, baseline_errors: int = 0, *,
             paths: dict[str, tuple[int, int]] | None = None, baseline_paths: dict[str, tuple[int, int]] | None = None,
             latency_ms: tuple[list[float], list[float]] | None = None,
             path_ms: dict[str, tuple[Sequence[float], Sequence[float]]] | None = None,
             config: TrafficConfig = FAST) -> Evidence:
    """Evidence with these totals, per-route (requests, errors) for the new release and the baseline, metrics
    latency buckets, and per-route response times (new, baseline) cycled over each route's entries."""
    windows = plan_windows(SWITCH, window_s=config.window_s, resolution_s=config.resolution_s,
                           baseline_s=config.baseline_s)
    found = Evidence(windows, requests=requests, errors=errors, baseline_requests=baseline_requests,
                     baseline_errors=baseline_errors, counts_read=True, last_bucket_seen=True)
    times = path_ms or {}
    for route, (n, e) in (paths or {}).items():
        found.paths.add_new(entries(route, n, e, start=SWITCH + 7, ms=times.get(route, ((), ()))[0]))
    found.paths.baseline_read = True
    for route, (n, e) in (baseline_paths or {}).items():
        found.paths.add_baseline(entries(route, n, e, start=SWITCH - 250, ms=times.get(route, ((), ()))[1]))
    if latency_ms is not None:
        found.latency_new_ms, found.latency_baseline_ms = tuple(latency_ms[0]), tuple(latency_ms[1])
    return found


def service(clock: FakeClock, *, seed: int = 1, routes: tuple[Route, ...] = ROUTES, rate_per_s: float = 10.0,
            **scenario: object) -> SimulatedService:
    """A simulated service whose release switched at ``clock.now``, with traffic from 15 minutes before to 15 after."""
    spec = Scenario(routes=routes, switched_at=clock.now, rate_per_s=rate_per_s, seed=seed,
                    starts_at=clock.now - 900, ends_at=clock.now + 900, **scenario)  # type: ignore[arg-type]
    return SimulatedService(spec, clock.time)
