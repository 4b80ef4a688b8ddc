"""What is known at one look: the windows of both releases, counts and latency split between them, path tallies.

Metrics buckets are attributed by their start time. A bucket that straddles the switch holds traffic of both
releases and is counted for neither; that is why the metrics windows are aligned to the bucket grid (Render's
buckets start at multiples of the resolution): the new release's window starts at the first bucket boundary at
or after the switch. Request logs carry exact times and are attributed to the release from the switch itself.

When the baseline's request logs were read whole and the new release's are read up to the logs' lag (every page
followed), the logs are exact per-request counts: :meth:`Evidence.count_from_logs` takes the service's counts
from them, and the observation need not wait for the bucket grid to catch up with a short window.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from deploypipe.analysis.paths import PathTally
from deploypipe.analysis.source import CountBucket, LatencyBucket, Window

__all__ = ["COUNTED_FROM_LOGS", "Evidence", "Windows", "plan_windows"]

COUNTED_FROM_LOGS = "counts from the complete request logs (every request seen)"


@dataclass(frozen=True)
class Windows:
    """The time ranges of one observation.

    ``new`` and ``baseline`` are metrics windows on the bucket grid; ``new_logs`` and ``baseline_logs`` are exact.
    """

    switched_at: float
    new: Window
    baseline: Window
    new_logs: Window
    baseline_logs: Window
    resolution_s: int
    requested_end: float = 0.0  # switched_at + window_s: where the exact (log) window ends

    @property
    def metrics_span(self) -> Window:
        """One metrics request covers both windows."""
        return Window(self.baseline.start, self.new.end)

    def last_bucket_start(self) -> float:
        return self.new.end - self.resolution_s


def _align_up(at: float, step: int) -> float:
    return float(math.ceil(at / step) * step)


def _align_down(at: float, step: int) -> float:
    return float(math.floor(at / step) * step)


def plan_windows(switched_at: float, *, window_s: float, resolution_s: int,
                 baseline: Window | None = None, baseline_s: float | None = None) -> Windows:
    """The windows for a switch at ``switched_at``: ``baseline`` (default the ``baseline_s`` before the switch)."""
    if baseline is None:
        if baseline_s is None:
            raise ValueError("give the baseline window or its length baseline_s")
        baseline = Window(switched_at - baseline_s, switched_at)
    if baseline.end > switched_at:
        raise ValueError(f"the baseline window ends at {baseline.end}, after the switch at {switched_at}")
    new_start = _align_up(switched_at, resolution_s)
    new_end = max(_align_up(switched_at + window_s, resolution_s), new_start + resolution_s)
    base_end = _align_down(baseline.end, resolution_s)
    base_start = min(_align_up(baseline.start, resolution_s), base_end)  # empty when shorter than a bucket
    return Windows(switched_at=switched_at, new=Window(new_start, new_end), baseline=Window(base_start, base_end),
                   new_logs=Window(switched_at, new_end), baseline_logs=baseline, resolution_s=resolution_s,
                   requested_end=switched_at + window_s)


@dataclass
class Evidence:
    """Everything read so far; counts are replaced by each metrics read (it covers the whole span)."""

    windows: Windows
    requests: int = 0
    errors: int = 0
    baseline_requests: int = 0
    baseline_errors: int = 0
    last_bucket_seen: bool = False
    counts_read: bool = False
    paths: PathTally = field(default_factory=PathTally)
    baseline_buckets: tuple[CountBucket, ...] = ()
    latency_new_ms: tuple[float, ...] | None = None
    latency_baseline_ms: tuple[float, ...] | None = None
    notes: list[str] = field(default_factory=list)

    def take_counts(self, buckets: Sequence[CountBucket]) -> None:
        """Replace the counts of both windows with a fresh read."""
        new = [b for b in buckets if b.start in self.windows.new]
        old = [b for b in buckets if b.start in self.windows.baseline]
        self.requests, self.errors = sum(b.requests for b in new), sum(b.errors for b in new)
        self.baseline_requests, self.baseline_errors = sum(b.requests for b in old), sum(b.errors for b in old)
        self.baseline_buckets = tuple(sorted(old, key=lambda b: b.start))
        self.last_bucket_seen = any(b.start >= self.windows.last_bucket_start() for b in new)
        self.counts_read = True

    def take_latency(self, buckets: Iterable[LatencyBucket]) -> None:
        """Split latency buckets between the windows (NaN values are dropped)."""
        values = [b for b in buckets if not math.isnan(b.ms)]
        self.latency_new_ms = tuple(b.ms for b in values if b.start in self.windows.new)
        self.latency_baseline_ms = tuple(b.ms for b in values if b.start in self.windows.baseline)

    @property
    def logs_complete(self) -> bool:
        """The baseline's request logs were read whole and the new release's are not behind: every request."""
        return self.paths.baseline_read and not self.paths.behind

    def count_from_logs(self) -> None:
        """Take the service's counts from complete request logs (exact) instead of the metrics buckets."""
        paths = self.paths
        self.requests = sum(p.requests for p in paths.new.values())
        self.errors = sum(p.errors for p in paths.new.values())
        self.baseline_requests = sum(p.requests for p in paths.baseline.values())
        self.baseline_errors = sum(p.errors for p in paths.baseline.values())
        self.counts_read = True
        self.note(COUNTED_FROM_LOGS)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)
