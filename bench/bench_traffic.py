"""Traffic verdict error rates on seeded simulated releases and a simulated clock, the new judge against the old.

Prints one table:
  false rollbacks: failed verdicts among healthy releases looked at every interval, with a 95 % Clopper-Pearson
      interval (target: at most ``significance``, 0.01), per kind of healthy release and in all;
  detection: a path failing 100 % at 2 req/s (looks and seconds to the failed verdict; target within 2 looks), a
      path going from 5 % to 20 % failures at 2 req/s (median and worst seconds), one path 10x slower at 1 req/s;
  logs read: the share of the new release's request-log entries the observation read (target 100 %, each once).

Healthy releases (every path fails the same share before and after, latency drifts by up to +-15 %): 5 req/s
over GET / 50 %, GET /notes 30 % (6 ms), POST /notes 10 %, GET /flaky 10 % failing 5 % (or 2 %) of its requests,
0.5 % background 5xx elsewhere; also 0.5 req/s. Render's real limits: the default TrafficConfig (30 s looks and
buckets, 10-minute window), metrics up to 60 s late, request logs up to 5 s late; and the local pacing (5 s looks
and buckets) over a 10-minute window. The old judge is the package as of commit ``OLD`` (one page of the newest
100 baseline entries, exact tests with the significance split over planned looks), loaded from git into a
temporary directory; it needs scipy and numpy, and its column says "skipped" without them.

Run: python bench/bench_traffic.py [--releases 500] [--runs 50] [--seed 2026] [--no-old]
     python bench/bench_traffic.py --releases 2500 --no-old    # 10,000 healthy releases (4 kinds x 2,500)
"""

from __future__ import annotations

import argparse
import importlib
import logging
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from deploypipe.analysis import TrafficConfig, Verdict, Window, observe
from deploypipe.analysis.simulation import Route, Scenario, SimulatedService
from deploypipe.analysis.stats import upper_bound
from deploypipe.testing import FakeClock

T0 = 1_772_625_600.0  # 2026-03-04 12:00:00 UTC
OLD = "0b56d1d"  # the last commit with the old judge
ROOT = Path(__file__).resolve().parent.parent

REAL = TrafficConfig()  # the defaults: Render's real limits
# the local Render's pacing (it allows 400 GETs a minute): 5 s looks and buckets, a 10-minute window
LOCAL = TrafficConfig(interval_s=5, resolution_s=5, late_data_s=15, logs_lag_s=10, logs_requests_per_min=300)


def mix(flaky: float = 0.05, changes: dict[str, Route] | None = None) -> tuple[Route, ...]:
    routes = {"GET /": Route("GET", "/", 0.5), "GET /notes": Route("GET", "/notes", 0.3, latency_ms=6.0),
              "POST /notes": Route("POST", "/notes", 0.1),
              "GET /flaky": Route("GET", "/flaky", 0.1, error_rate_before=flaky, error_rate_after=flaky)}
    routes.update(changes or {})
    return tuple(routes.values())


DETECT_RATE = 10.0  # req/s in all: a path at 20 % carries 2 req/s, at 10 % 1 req/s
BROKEN = mix(changes={"POST /notes": Route("POST", "/notes", 0.2, error_rate_after=1.0)})
WORSE = mix(changes={"GET /flaky": Route("GET", "/flaky", 0.2, error_rate_before=0.05, error_rate_after=0.2)})
SLOWER = mix(changes={"GET /notes": Route("GET", "/notes", 0.1, latency_ms=6.0, latency_factor=10.0)})


def release(config: TrafficConfig, routes: tuple[Route, ...], seed: int, *, rate_per_s: float,
            judge: Callable[..., Any] = observe, drift: float = 0.15) -> tuple[Any, SimulatedService]:
    """One simulated release: the switch lands anywhere on the bucket grid; returns the verdict and the service."""
    rng = random.Random(seed)
    switched_at = T0 + rng.uniform(0, 60)
    clock = FakeClock(now=switched_at)
    scenario = Scenario(routes=routes, switched_at=switched_at, rate_per_s=rate_per_s, seed=seed,
                        # at 5 req/s every path has its baseline requests within baseline_s: no need to widen
                        starts_at=switched_at - (config.max_baseline_s if rate_per_s < 2 else config.baseline_s) - 60,
                        ends_at=switched_at + config.window_s + config.late_data_s + 120,
                        latency_ms_before=80.0, latency_ms_after=80.0 * (1 + rng.uniform(-drift, drift)),
                        latency_sigma=0.6, metrics_lag_s=60.0, logs_lag_s=5.0)
    source = SimulatedService(scenario, clock.time)
    verdict = judge(source, config, switched_at=switched_at, clock=clock.time, sleep=clock.sleep)
    return verdict, source


def load_old() -> Callable[..., Any] | None:
    """The old ``observe`` from git, or None without scipy/numpy."""
    try:
        importlib.import_module("scipy.stats")
        importlib.import_module("numpy")
    except ImportError:
        return None
    target = Path(tempfile.mkdtemp(prefix="deploypipe-old-judge-")) / "old_analysis"
    target.mkdir()
    names = subprocess.run(["git", "-C", str(ROOT), "ls-tree", "--name-only", OLD, "deploypipe/analysis/"],
                           capture_output=True, text=True, check=True).stdout.split()
    for name in names:
        text = subprocess.run(["git", "-C", str(ROOT), "show", f"{OLD}:{name}"], capture_output=True, text=True,
                              check=True).stdout
        (target / Path(name).name).write_text(text.replace("deploypipe.analysis", "old_analysis"))
    sys.path.insert(0, str(target.parent))
    old = importlib.import_module("old_analysis")
    fields = set(old.TrafficConfig.model_fields)

    def run(source: Any, config: TrafficConfig, **kwargs: Any) -> Any:
        settings = {key: value for key, value in config.model_dump().items() if key in fields}
        return old.observe(source, old.TrafficConfig(**settings), **kwargs)

    return run


def interval(failed: int, total: int) -> str:
    """``0.31 % [0.12, 0.64]``: the share and its 95 % Clopper-Pearson interval."""
    low = 1 - upper_bound(total - failed, total, 0.025) if failed else 0.0
    high = upper_bound(failed, total, 0.025)
    return f"{failed / total * 100:.2f} % [{low * 100:.2f}, {high * 100:.2f}] of {total}"


def seconds(values: list[float]) -> str:
    return f"median {statistics.median(values):.0f} s, worst {max(values):.0f} s" if values else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--releases", type=int, default=500, help="healthy releases per kind (4 kinds)")
    parser.add_argument("--runs", type=int, default=50, help="releases per detection row")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--no-old", action="store_true", help="leave out the old judge")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    started = time.perf_counter()
    judges: dict[str, Callable[..., Any] | None] = {"new": observe}
    if not args.no_old:
        judges["old"] = load_old()
    read = [0, 0, 0]  # entries of the new window read, requests in it, entries read more than once

    def tally(verdict: Verdict, source: SimulatedService, config: TrafficConfig) -> None:
        """Count the entries of a whole window (a release observed to its end) the logs returned."""
        window = Window(source.scenario.switched_at, source.scenario.switched_at + config.window_s)
        inside = source.requests_in(window)
        seen = [source.log_reads[i] for i in inside]
        read[0] += sum(1 for n in seen if n)
        read[1] += len(seen)
        read[2] += sum(1 for n in seen if n > 1)

    print(f"{'healthy releases: false rollbacks':58s} " + "  ".join(f"{name:>34s}" for name in judges))
    kinds = (("Render limits, GET /flaky 5 % before and after", REAL, mix(0.05), 5.0),
             ("Render limits, GET /flaky 2 % before and after", REAL, mix(0.02), 5.0),
             ("Render limits, 0.5 req/s, GET /flaky 5 %", REAL, mix(0.05), 0.5),
             ("local pacing (5 s), 10-min window, GET /flaky 5 %", LOCAL, mix(0.05), 5.0))
    totals = {name: 0 for name in judges}
    examples: list[str] = []
    for number, (label, config, routes, rate) in enumerate(kinds):
        cells = []
        for name, judge in judges.items():
            if judge is None:
                cells.append("skipped (needs scipy, numpy)")
                continue
            failed = 0
            for i in range(args.releases):
                verdict, source = release(config, routes, args.seed + 10_000 * number + i, rate_per_s=rate,
                                          judge=judge)
                if verdict.status == "fail":
                    failed += 1
                    if name == "new" and len(examples) < 5:
                        examples.append(verdict.message)
                if name == "new" and not verdict.early:
                    tally(verdict, source, config)
            totals[name] += failed
            cells.append(interval(failed, args.releases))
        print(f"  {label:56s} " + "  ".join(f"{cell:>34s}" for cell in cells))
    all_cells = [interval(totals[name], args.releases * len(kinds)) if judge else "skipped"
                 for name, judge in judges.items()]
    print(f"  {'all healthy releases':56s} " + "  ".join(f"{cell:>34s}" for cell in all_cells))
    for text in examples:
        print(f"      e.g. {text}")

    print(f"{'detection (Render limits unless said)':58s} " + "  ".join(f"{name:>34s}" for name in judges))
    rows = (("POST /notes failing 100 % at 2 req/s", REAL, BROKEN),
            ("POST /notes failing 100 % at 2 req/s, local pacing", LOCAL, BROKEN),
            ("GET /flaky 5 % -> 20 % at 2 req/s", REAL, WORSE),
            ("GET /notes 10x slower at 1 req/s", REAL, SLOWER))
    for number, (label, config, routes) in enumerate(rows):
        cells = []
        for judge in judges.values():
            if judge is None:
                cells.append("skipped")
                continue
            times, looks, missed = [], [], 0
            for i in range(args.runs):
                verdict, source = release(config, routes, args.seed + 500_000 + 1000 * number + i,
                                          rate_per_s=DETECT_RATE, judge=judge)
                if verdict.status == "fail":
                    times.append(verdict.elapsed_s)
                    looks.append(verdict.looks)
                else:
                    missed += 1
            most = f", looks <= {max(looks)}" if looks else ""
            cells.append(f"{seconds(times)}{most}, {missed} missed")
        print(f"  {label:56s} " + "  ".join(f"{cell:>34s}" for cell in cells))
    share = read[0] / read[1] * 100 if read[1] else 0.0
    print(f"request-log entries of the new release's windows read by the new judge (healthy releases): {share:.2f} % "
          f"of {read[1]} ({read[2]} read twice)")
    print(f"({time.perf_counter() - started:.0f} s of real time)")


if __name__ == "__main__":
    main()
