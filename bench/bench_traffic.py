"""Traffic analysis figures on seeded simulated releases and a simulated clock (issue 11).

Prints:
  (a) detection: seconds from the switch to the failed verdict for a release whose one path (POST /notes, 20 % of
      10 req/s = 2 req/s) answers 500 to everyone; at the local Render's pacing (5 s looks, 5 s or 30 s
      buckets; target <= 10 s) and at Render's real limits (30 s looks and buckets, metrics up to 60 s and
      logs up to 10 s late; target <= 90 s). The observation starts at the switch.
  (b) false alarms: failed verdicts in N healthy releases (target 0)
  (c) misses: verdicts that are not failures in N releases where POST /notes, 5 % of the traffic, fails 20 %
      of its requests (target 0)
  (d) API cost: the most metrics and logs requests seen in any one interval of any run (target <= 1 + 1)

Assumed traffic for (b) and (c): 5 requests/s (Poisson) over GET / 55 %, GET /notes 35 %, POST /notes 5 %,
GET /health 5 %; 0.5 % background 5xx on every path before and after the switch; latency log-normal around a
median that moves by up to +-15 % between releases (sigma 0.6 per request); the default TrafficConfig (10-minute
window against the 10 minutes before, 30 s looks and buckets, metrics up to 45 s late, logs up to 5 s late).
Nothing here is timed against a wall clock: every figure is simulated time or a count.

Run: python bench/bench_traffic.py [--runs 50] [--seed 2026]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from collections.abc import Iterable

import numpy as np
import structlog

from deploypipe.analysis import TrafficConfig, Verdict, observe
from deploypipe.analysis.simulation import Route, Scenario, SimulatedService
from deploypipe.testing import FakeClock

T0 = 1_772_625_600.0  # 2026-03-04 12:00:00 UTC

LOCAL = TrafficConfig(interval_s=5, resolution_s=5, window_s=60, late_data_s=15)
REAL = TrafficConfig()  # the defaults: Render's real limits

DETECTION_ROUTES = (Route("GET", "/", 0.5), Route("GET", "/notes", 0.3),
                    Route("POST", "/notes", 0.2, error_rate_after=1.0))
MIX = (Route("GET", "/", 0.55), Route("GET", "/notes", 0.35), Route("POST", "/notes", 0.05),
       Route("GET", "/health", 0.05))
BROKEN_MIX = tuple(Route(r.method, r.path, r.share, error_rate_after=0.2) if r.method == "POST" else r for r in MIX)


def run(config: TrafficConfig, routes: tuple[Route, ...], seed: int, *, rate_per_s: float, metrics_lag_s: float,
        logs_lag_s: float, latency_drift: float = 0.0) -> tuple[Verdict, SimulatedService]:
    """One simulated release: the switch lands anywhere on the bucket grid; returns the verdict and the service."""
    rng = np.random.default_rng(seed)
    switched_at = T0 + float(rng.uniform(0, 60))
    clock = FakeClock(now=switched_at)
    after = 80.0 * (1 + float(rng.uniform(-latency_drift, latency_drift)))
    scenario = Scenario(routes=routes, switched_at=switched_at, rate_per_s=rate_per_s, seed=seed,
                        starts_at=switched_at - config.baseline_s - 120, ends_at=switched_at + config.window_s + 600,
                        latency_ms_before=80.0, latency_ms_after=after, latency_sigma=0.6,
                        metrics_lag_s=metrics_lag_s, logs_lag_s=logs_lag_s)
    source = SimulatedService(scenario, clock.time)
    verdict = observe(source, config, switched_at=switched_at, clock=clock.time, sleep=clock.sleep)
    return verdict, source


def most_per_interval(times: list[float], interval_s: float) -> int:
    """The most calls inside any half-open interval of ``interval_s`` seconds."""
    ordered = sorted(times)
    return max((sum(1 for t in ordered[i:] if t < start + interval_s) for i, start in enumerate(ordered)), default=0)


def summary(values: Iterable[float]) -> str:
    data = sorted(values)
    return f"median {statistics.median(data):.0f} s, worst {data[-1]:.0f} s (n={len(data)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    started = time.perf_counter()
    budget: dict[str, tuple[int, int]] = {}

    def account(name: str, config: TrafficConfig, source: SimulatedService) -> None:
        metrics = most_per_interval(source.calls_of("metrics"), config.interval_s)
        logs = most_per_interval(source.calls_of("logs"), config.interval_s)
        seen = budget.get(name, (0, 0))
        budget[name] = (max(seen[0], metrics), max(seen[1], logs))

    print("(a) detection, one path failing 100 % at 2 req/s (10 req/s in all)")
    for name, config, lag, log_lag in (("local Render, 5 s looks/buckets", LOCAL, 2.0, 1.0),
                                       ("local Render, 5 s looks, 30 s buckets",
                                        LOCAL.model_copy(update={"resolution_s": 30}), 2.0, 1.0),
                                       ("real Render, 30 s looks/buckets", REAL, 60.0, 10.0)):
        times, missed = [], 0
        for i in range(args.runs):
            verdict, source = run(config, DETECTION_ROUTES, args.seed + i, rate_per_s=10.0, metrics_lag_s=lag,
                                  logs_lag_s=log_lag)
            account(name, config, source)
            if verdict.status == "fail":
                times.append(verdict.elapsed_s)
            else:
                missed += 1
        print(f"    {name:38s} {summary(times)}, {missed} not failed; e.g. {verdict.message}")

    print("(b) false alarms in healthy releases, (c) misses in releases with POST /notes (5 %) failing 20 %")
    for name, config in (("real Render defaults", REAL),
                         ("local pacing, 10-min window", LOCAL.model_copy(update={"window_s": 600.0,
                                                                                   "late_data_s": 60.0}))):
        alarms, misses, misnamed, outcomes, caught = [], [], [], [], []
        for i in range(args.runs):
            verdict, source = run(config, MIX, args.seed + 1000 + i, rate_per_s=5.0, metrics_lag_s=45.0,
                                  logs_lag_s=5.0, latency_drift=0.15)
            account(name, config, source)
            outcomes.append(verdict.status)
            if verdict.status == "fail":
                alarms.append(verdict.message)
        for i in range(args.runs):
            verdict, source = run(config, BROKEN_MIX, args.seed + 2000 + i, rate_per_s=5.0, metrics_lag_s=45.0,
                                  logs_lag_s=5.0, latency_drift=0.15)
            account(name, config, source)
            if verdict.status != "fail":
                misses.append(f"miss, {verdict.status}: {verdict.message}")
                continue
            caught.append(verdict.elapsed_s)
            if not verdict.message.startswith("POST /notes") and "; POST /notes" not in verdict.message:
                misnamed.append(f"failed without naming POST /notes first: {verdict.message}")
        print(f"    {name:38s} false alarms {len(alarms)} of {args.runs} "
              f"({outcomes.count('pass')} pass, {outcomes.count('inconclusive')} inconclusive); "
              f"misses {len(misses)} of {args.runs} ({len(misnamed)} failed naming another path first); "
              f"detected in {summary(caught) if caught else '-'}")
        for text in alarms + misses + misnamed:
            print(f"        {text}")

    print("(d) API requests in any one interval (metrics + logs), most seen in any run")
    for name, (metrics, logs) in budget.items():
        print(f"    {name:38s} {metrics} metrics + {logs} logs")
    print(f"({time.perf_counter() - started:.1f} s of real time for the whole bench)")


if __name__ == "__main__":
    main()
