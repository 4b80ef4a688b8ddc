"""What the traffic analysis reads: the ``TrafficSource`` protocol and the typed values it returns.

A stage implements :class:`TrafficSource` on top of the Render client (one HTTP request per call, no retry of its
own: the observation loop retries within its per-interval request budget). Times are epoch seconds (floats, as
the injected clock gives them); every window is half-open, ``[start, end)``.

How each method maps onto Render's public API (``render-openapi.json``):

``request_counts``  ``GET /v1/metrics/http-requests?resource=<srv>&aggregateBy=statusCode&resolutionSeconds=<r>
                    &startTime=&endTime=``: one time series per status code (label ``statusCode``); sum the series
                    per timestamp into ``requests`` and the 5xx series into ``errors``.
``latency``         ``GET /v1/metrics/http-latency?resource=<srv>&quantile=<q>&resolutionSeconds=<r>&startTime=
                    &endTime=``: one series, one quantile per bucket; skip buckets without a value.
``request_logs``    ``GET /v1/logs?ownerId=&resource=<srv>&type=request&direction=backward&limit=<n>&startTime=
                    &endTime=``: ONE page, newest first; labels ``method``, ``path``, ``statusCode``; ``hasMore``
                    says the window held more entries than the page (the older ones are then not seen).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = [
    "RENDER_LOG_PAGE_MAX",
    "RENDER_MIN_RESOLUTION_S",
    "CountBucket",
    "LatencyBucket",
    "LogPage",
    "RequestLogEntry",
    "TrafficSource",
    "Window",
]

RENDER_MIN_RESOLUTION_S = 30  # resolutionSeconds minimum in Render's spec (the local Render may allow less)
RENDER_LOG_PAGE_MAX = 100  # limitParam maximum of GET /v1/logs


@dataclass(frozen=True)
class Window:
    """A half-open time range ``[start, end)`` in epoch seconds."""

    start: float
    end: float

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"window ends ({self.end}) before it starts ({self.start})")

    @property
    def duration_s(self) -> float:
        return self.end - self.start

    def __contains__(self, at: object) -> bool:
        return isinstance(at, (int, float)) and self.start <= at < self.end


@dataclass(frozen=True)
class CountBucket:
    """Requests that arrived in ``[start, start + resolution)``: all of them, and those answered 5xx."""

    start: float
    requests: int
    errors: int

    def __post_init__(self) -> None:
        if not 0 <= self.errors <= self.requests:
            raise ValueError(f"bucket at {self.start}: {self.errors} errors of {self.requests} requests")


@dataclass(frozen=True)
class LatencyBucket:
    """The latency quantile (milliseconds) of the requests in ``[start, start + resolution)``."""

    start: float
    ms: float


@dataclass(frozen=True)
class RequestLogEntry:
    """One request log line: when it was answered, the method, the path (query string allowed), the status and
    the response time in milliseconds (None when the line had none)."""

    at: float
    method: str
    path: str
    status: int
    ms: float | None = None


@dataclass(frozen=True)
class LogPage:
    """One page of request logs, newest first; ``has_more`` when the window held more than the page, and then
    ``next``: the window of the next page (the older part of the window not yet returned)."""

    entries: tuple[RequestLogEntry, ...]
    has_more: bool = False
    next: Window | None = None


@runtime_checkable
class TrafficSource(Protocol):
    """Render's traffic metrics and request logs for ONE service; each call is exactly one API request.

    Raise an error that is a ``deploypipe.errors.TransientError`` (e.g. ``TransientProviderError``,
    ``RateLimitedError``) for a passing failure: the loop retries it when its budget allows. Anything else ends
    the observation.
    """

    def request_counts(self, window: Window, resolution_s: int) -> Sequence[CountBucket]:
        """Request and 5xx counts per bucket of ``resolution_s`` seconds over ``window`` (buckets may be missing)."""
        ...

    def latency(self, window: Window, resolution_s: int, quantile: float) -> Sequence[LatencyBucket]:
        """The ``quantile`` (e.g. 0.99) of response times per bucket over ``window``, in milliseconds."""
        ...

    def request_logs(self, window: Window, limit: int) -> LogPage:
        """At most ``limit`` request log entries of ``window``, newest first, in one request."""
        ...
