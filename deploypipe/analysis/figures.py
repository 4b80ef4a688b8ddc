"""The journal's figures of an observation: each look (``traffic_look``), the baseline once read (``traffic_baseline``).

``traffic_baseline``: ``start`` and ``end`` (epoch seconds: where the baseline's request logs begin, widened or
not, and the switch), ``requests`` and ``errors`` (the service's baseline counts) and ``buckets`` (``start``,
``requests``, ``errors`` each: the metrics buckets of the ``baseline_s`` before the switch; requests 0 and no
buckets without a baseline). ``traffic_look``: ``look``, ``at``, ``elapsed_s``, the counts of both windows, ``paths``,
the service's ``latency_ms`` and ``baseline_latency_ms`` (``latency_quantile`` of the request logs' response
times, None without) and ``path_latency``: ``route``, ``ms``, ``baseline_ms`` (``path_latency_quantile``) per route.
"""

from __future__ import annotations

from typing import Any

from deploypipe.analysis.config import TrafficConfig
from deploypipe.analysis.evidence import Evidence
from deploypipe.analysis.latency import sorted_quantile

__all__ = ["baseline_figures", "look_figures"]


def baseline_figures(evidence: Evidence) -> dict[str, Any]:
    """The ``traffic_baseline`` event's fields."""
    windows = evidence.windows
    return {"start": windows.baseline_logs.start, "end": windows.switched_at,
            "requests": evidence.baseline_requests, "errors": evidence.baseline_errors,
            "buckets": [{"start": b.start, "requests": b.requests, "errors": b.errors}
                        for b in evidence.baseline_buckets] if evidence.baseline_requests else []}


def look_figures(evidence: Evidence, config: TrafficConfig, *, look: int, at: float) -> dict[str, Any]:
    """The ``traffic_look`` event's fields at look number ``look``, taken at ``at``."""
    paths = evidence.paths

    return {"look": look, "at": at, "elapsed_s": round(at - evidence.windows.switched_at, 3),
            "requests": evidence.requests, "errors": evidence.errors,
            "baseline_requests": evidence.baseline_requests, "baseline_errors": evidence.baseline_errors,
            "paths": len(paths.new),
            "latency_ms": sorted_quantile(paths.total_new.sorted_ms(), config.latency_quantile),
            "baseline_latency_ms": sorted_quantile(paths.total_baseline.sorted_ms(), config.latency_quantile),
            "path_latency": [{"route": route, "ms": sorted_quantile(counts.sorted_ms(), config.path_latency_quantile),
                              "baseline_ms": sorted_quantile(paths.baseline_of(route).sorted_ms(),
                                                             config.path_latency_quantile)}
                             for route, counts in paths.new.items()]}
