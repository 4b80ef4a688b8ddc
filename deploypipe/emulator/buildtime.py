"""Per-service build durations of the local Render, so parallel releases can be measured on it."""

from __future__ import annotations

import threading
import time
from typing import Callable

__all__ = ["take_at_least"]


def take_at_least(seconds: float, started: float, *, cancelled: Callable[[], bool], closed: threading.Event) -> None:
    """Return once ``seconds`` have passed since ``started`` (``time.monotonic``), or at once when cancelled or
    closed; the wait is cut in 0.1 s steps so a cancel is seen quickly."""
    until = started + seconds
    while not cancelled() and not closed.wait(min(0.1, max(0.0, until - time.monotonic()))):
        if time.monotonic() >= until:
            return
