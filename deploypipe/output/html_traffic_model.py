"""The traffic figures the HTML report reads from a run's journal: the baseline, its buckets, the looks, per path.

Times are seconds after the run's origin (as everywhere in the report); ``elapsed_s`` is a look's time after the
switch, as the traffic stage measured it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PathLatency", "TrafficBaseline", "TrafficBucket", "TrafficLook", "share"]


def share(part: int | None, whole: int | None) -> float | None:
    return None if part is None or not whole else part / whole


@dataclass(frozen=True)
class PathLatency:
    """One path's latency at a look: the new release's and its baseline's (ms)."""

    route: str
    ms: float | None
    baseline_ms: float | None


@dataclass(frozen=True)
class TrafficLook:
    """One look of a traffic analysis (event ``traffic_look``); counts are the windows' totals at that look."""

    at_s: float | None
    elapsed_s: float | None
    requests: int | None
    errors: int | None
    baseline_requests: int | None
    baseline_errors: int | None
    latency_ms: float | None
    baseline_latency_ms: float | None
    verdict: str
    paths: tuple[PathLatency, ...] = ()

    @property
    def error_share(self) -> float | None:
        return share(self.errors, self.requests)

    @property
    def baseline_error_share(self) -> float | None:
        return share(self.baseline_errors, self.baseline_requests)


@dataclass(frozen=True)
class TrafficBucket:
    """The baseline's requests and 5xx answers in one bucket starting at ``at_s``."""

    at_s: float
    requests: int | None
    errors: int | None


@dataclass(frozen=True)
class TrafficBaseline:
    """The previous release's traffic before the switch (event ``traffic_baseline``); ``end_s`` is the switch."""

    start_s: float
    end_s: float
    requests: int | None
    errors: int | None
    buckets: tuple[TrafficBucket, ...] = ()
