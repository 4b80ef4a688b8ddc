"""Latency figures: a quantile of response times, and the check of Render's metrics quantile (logs without times).

When the request logs carry response times, latency is judged per request by the sequential tests of
``judge``; :func:`quantile` gives the figures. Otherwise the metrics quantile is checked once, at the last look:
Render reports one quantile per metrics bucket, and quantiles of buckets do not add up to the quantile of the
window. The window's figure is the median of its buckets' quantiles: a release slow in most buckets is caught,
while one slow bucket (a cold start right after the switch, a garbage-collection pause) does not fail it on its
own. The factor test needs both a relative growth (``max_latency_factor``) and an absolute one
(``min_latency_increase_ms``): on a fast service 3 ms -> 7 ms is noise, not a regression.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["LatencyResult", "judge_latency", "quantile", "sorted_quantile", "window_latency"]


def sorted_quantile(ordered: Sequence[float], q: float) -> float | None:
    """The empirical ``q`` quantile (nearest rank) of values already in ascending order; None without values."""
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def quantile(values: Sequence[float], q: float) -> float | None:
    """The empirical ``q`` quantile (nearest rank) of ``values``; None without values."""
    return sorted_quantile(sorted(values), q)


def window_latency(bucket_ms: Sequence[float]) -> float | None:
    """The window's latency figure: the median of its buckets' quantiles (None without buckets)."""
    return statistics.median(bucket_ms) if bucket_ms else None


@dataclass(frozen=True)
class LatencyResult:
    """The latency figures of both windows and why they fail (empty ``failures`` = within bounds)."""

    new_ms: float | None
    baseline_ms: float | None
    failures: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


def judge_latency(new_buckets_ms: Sequence[float], baseline_buckets_ms: Sequence[float], *, label: str,
                  max_ms: float, max_factor: float, min_increase_ms: float) -> LatencyResult:
    """Judge the new window's latency quantile (``label`` such as ``p99``) against the bound and the baseline."""
    new = window_latency(new_buckets_ms)
    baseline = window_latency(baseline_buckets_ms)
    if new is None:
        return LatencyResult(None, baseline, notes=(f"latency not judged: no {label} data for the new release",))
    failures: list[str] = []
    if new > max_ms and (baseline is None or baseline <= max_ms):  # a bound the previous release kept
        failures.append(f"{label} latency {new:.0f} ms is above the {max_ms:.0f} ms bound")
    if baseline is None:
        return LatencyResult(new, None, tuple(failures),
                             (f"{label} latency not compared: no baseline data",))
    if new > baseline * max_factor and new - baseline >= min_increase_ms:
        failures.append(f"{label} latency {new:.0f} ms is {new / baseline:.1f}x the baseline's {baseline:.0f} ms "
                        f"(allowed {max_factor:g}x)" if baseline > 0 else
                        f"{label} latency {new:.0f} ms, baseline 0 ms")
    return LatencyResult(new, baseline, tuple(failures))
