"""How the Render client retries and paces itself: the policy, tenacity strategies and the rate-limit throttle.

Only transient failures are retried. A 429 waits what Render asks
(``Retry-After``, else ``Ratelimit-Reset``); 5xx and network failures back off
exponentially with jitter. Attempts and a total deadline (measured with the
injected clock) bound every retry loop. When ``Ratelimit-Remaining`` runs low
the client waits for the window to reset *before* the next call instead of
running into a 429.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable

import httpx
import structlog
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from deploypipe.errors import RateLimitedError, TransientProviderError

__all__ = ["RateLimitThrottle", "RetryPolicy", "build_retrying"]

log = structlog.get_logger("deploypipe.render")


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds and pacing of the Render client's retries.

    ``lookup_skew_s``: how far before a trigger's start (wall clock) the
    at-most-once lookup searches for the deploy a lost answer may have created.
    """

    attempts: int = 5
    deadline_s: float = 60.0
    backoff_s: float = 0.5
    max_backoff_s: float = 20.0
    low_remaining: int = 2
    max_throttle_s: float = 60.0
    lookup_skew_s: float = 30.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def wait_for(self, exc: BaseException | None, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        if isinstance(exc, RateLimitedError) and exc.retry_after_s is not None:
            return float(exc.retry_after_s)
        base = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1))
        return base / 2 + self.rng.uniform(0, base / 2)


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, TransientProviderError)


def build_retrying(policy: RetryPolicy, *, sleep: Callable[[float], None], clock: Callable[[], float], what: str,
                   retry_if: Callable[[BaseException], bool] = _transient) -> Retrying:
    """A tenacity ``Retrying`` for one call: transient errors only (or ``retry_if``), bounded by attempts and a
    deadline measured with ``clock``."""
    started = clock()

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        return policy.wait_for(exc, state.attempt_number)

    attempts = stop_after_attempt(policy.attempts)

    def stop(state: RetryCallState) -> bool:
        """Out of attempts, or the next wait would end past the deadline."""
        return attempts(state) or clock() - started + wait(state) > policy.deadline_s

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning("render_retrying", request=what, attempt=state.attempt_number,
                    wait_s=round(state.next_action.sleep if state.next_action else 0.0, 3),
                    reason=getattr(exc, "message", None) or type(exc).__name__)

    return Retrying(stop=stop, wait=wait, retry=retry_if_exception(retry_if), sleep=sleep, reraise=True,
                    before_sleep=before_sleep)


class RateLimitThrottle:
    """Remembers ``Ratelimit-Remaining``/``-Reset`` per rate-limit bucket and waits before a call that would hit 0."""

    def __init__(self, policy: RetryPolicy, *, sleep: Callable[[float], None], clock: Callable[[], float],
                 wall_clock: Callable[[], float]):
        self.policy = policy
        self.sleep = sleep
        self.clock = clock
        self.wall_clock = wall_clock
        self._state: dict[str, tuple[int, float]] = {}  # bucket -> (remaining, reset at clock())

    @staticmethod
    def bucket(method: str, path: str) -> str:
        """Render limits GETs per user, deploy triggers per service, other writes per user."""
        if method == "GET":
            return "GET"
        if method == "POST" and path.rstrip("/").endswith("/deploys"):
            return f"POST {path}"
        return "WRITE"

    def before(self, bucket: str) -> None:
        state = self._state.get(bucket)
        if state is None:
            return
        remaining, reset_at = state
        wait = min(reset_at - self.clock(), self.policy.max_throttle_s)
        if remaining <= self.policy.low_remaining and wait > 0:
            log.info("render_rate_limit_low", bucket=bucket, remaining=remaining, wait_s=round(wait, 3))
            self.sleep(wait)
        if remaining <= self.policy.low_remaining:
            self._state.pop(bucket, None)

    def after(self, bucket: str, response: httpx.Response) -> None:
        remaining = response.headers.get("Ratelimit-Remaining")
        reset = response.headers.get("Ratelimit-Reset")
        if remaining is None or reset is None:
            return
        try:
            left, reset_s = int(remaining), float(reset)
        except ValueError:
            return
        if reset_s > 1e9:  # epoch seconds rather than a delay (Render's docs say both)
            reset_s = max(0.0, reset_s - self.wall_clock())
        self._state[bucket] = (left, self.clock() + reset_s)
