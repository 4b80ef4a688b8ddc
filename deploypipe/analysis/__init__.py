"""Judge a release on its real traffic against the previous release of the same service (Render has no split).

The new release's window starts at the switch; the baseline is the previous release's traffic before it. A stage
implements :class:`TrafficSource` on the Render client and calls::

    config = TrafficConfig(**params)                      # validated, frozen; defaults fit Render's real limits
    verdict = observe(source, config, switched_at=t, clock=time.time, sleep=ctx.sleep)  # epoch seconds
    if verdict.outcome == "fail": raise StageFailed(verdict.message, ...)   # "warn": show verdict.message

Modules: ``source`` (the protocol and its values), ``config``, ``stats`` (the sequential test, bounds, why
them), ``latency``, ``paths`` (per-route tallies and the message), ``evidence`` (windows and what was read),
``judge`` (evidence -> verdict), ``verdict`` (the result), ``observe`` (the loop and its request budget),
``baseline`` (the baseline's request logs, newest first), ``simulation`` (a seeded fake service for tests and
``bench/bench_traffic.py``, not imported here). Standard library only: no numpy, no scipy.
"""

from deploypipe.analysis.config import OnInconclusive, TrafficConfig
from deploypipe.analysis.evidence import Evidence, Windows, plan_windows
from deploypipe.analysis.judge import judge
from deploypipe.analysis.observe import observe
from deploypipe.analysis.paths import path_message, route_of
from deploypipe.analysis.source import (
    RENDER_LOG_PAGE_MAX,
    RENDER_MIN_RESOLUTION_S,
    CountBucket,
    LatencyBucket,
    LogPage,
    RequestLogEntry,
    TrafficSource,
    Window,
)
from deploypipe.analysis.verdict import Figures, Outcome, PathFinding, Status, Verdict

__all__ = [
    "RENDER_LOG_PAGE_MAX",
    "RENDER_MIN_RESOLUTION_S",
    "CountBucket",
    "Evidence",
    "Figures",
    "LatencyBucket",
    "LogPage",
    "OnInconclusive",
    "Outcome",
    "PathFinding",
    "RequestLogEntry",
    "Status",
    "TrafficConfig",
    "TrafficSource",
    "Verdict",
    "Window",
    "Windows",
    "judge",
    "observe",
    "path_message",
    "plan_windows",
    "route_of",
]
