"""Poll until something is ready or a deadline passes, on an injected clock and sleep (tenacity underneath).

One helper serves every wait in deploypipe: a deploy reaching a terminal
status, a service becoming healthy, a lock becoming free, a server starting.
The clock and sleep are arguments, so tests run these waits on a FakeClock.
"""

from __future__ import annotations

import time
from typing import Callable, TypeVar

from tenacity import RetryCallState, Retrying, retry_if_result

__all__ = ["poll"]

T = TypeVar("T")


def poll(check: Callable[[], T | None], *, timeout_s: float, interval_s: float,
         clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
         growth: float = 1.0, max_interval_s: float | None = None, wait_first: bool = False) -> T | None:
    """Call ``check`` until it returns something other than None; return that, or None once ``timeout_s`` passed.

    ``check`` runs at once (after one interval with ``wait_first``) and again
    after each wait; waits start at ``interval_s``, grow by ``growth`` up to
    ``max_interval_s`` and never reach past the deadline, so the last check
    runs at the deadline. Exceptions from ``check`` propagate unchanged.
    """
    deadline = clock() + timeout_s

    def remaining() -> float:
        return max(0.0, deadline - clock())

    def wait(state: RetryCallState) -> float:
        step = interval_s * growth ** (state.attempt_number - 1)
        if max_interval_s is not None:
            step = min(step, max_interval_s)
        return min(step, remaining())

    def deadline_passed(state: RetryCallState) -> bool:
        return remaining() <= 0

    if wait_first:
        if timeout_s <= 0:
            return None
        sleep(min(interval_s, remaining()))
    retrying: Retrying = Retrying(retry=retry_if_result(lambda value: value is None), stop=deadline_passed, wait=wait,
                                  sleep=sleep, retry_error_callback=lambda state: None)
    return retrying(check)
