"""How long an HTTP server asks us to wait: ``Retry-After`` (seconds or a date), else ``Ratelimit-Reset``."""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime
from typing import Callable

import httpx

__all__ = ["retry_after_s"]

_EPOCH_THRESHOLD = 1e9  # a Ratelimit-Reset this large is an epoch timestamp, not a delay


def _seconds(value: str, wall_clock: Callable[[], float]) -> float | None:
    try:
        seconds = float(value)
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - wall_clock())
        except (TypeError, ValueError, IndexError):
            return None
    if seconds > _EPOCH_THRESHOLD:
        seconds -= wall_clock()
    return max(0.0, seconds)


def retry_after_s(response: httpx.Response, wall_clock: Callable[[], float] = time.time) -> float | None:
    """Seconds the server asks us to wait: ``Retry-After``, else ``Ratelimit-Reset`` (delay or epoch seconds)."""
    for header in ("Retry-After", "Ratelimit-Reset"):
        value = response.headers.get(header)
        if value is not None:
            seconds = _seconds(value.strip(), wall_clock)
            if seconds is not None:
                return seconds
    return None
