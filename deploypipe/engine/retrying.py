"""A stage's retry policy on tenacity: only transient errors, exponential backoff with jitter, each wait journalled."""

from __future__ import annotations

from typing import Any, Callable

import structlog
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from deploypipe.errors import TransientError
from deploypipe.spec.model import RetrySpec

__all__ = ["retrying"]

log = structlog.get_logger("deploypipe.runner")


def retrying(stage_id: str, policy: RetrySpec, *, sleep: Callable[[float], None],
             emit: Callable[..., Any]) -> Retrying:
    """Attempts of stage ``stage_id`` under ``policy``; waits go through ``sleep``, each one ``emit``-ted first."""

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        emit("stage_retrying", stage=stage_id, attempt=state.attempt_number, wait_s=round(wait, 3), reason=str(exc))
        log.warning("retrying", stage=stage_id, attempt=state.attempt_number, wait_s=round(wait, 3), reason=str(exc))

    return Retrying(
        stop=stop_after_attempt(policy.attempts),
        wait=wait_exponential(multiplier=policy.backoff_s, max=policy.max_backoff_s)
        + wait_random(0, policy.backoff_s / 2),
        retry=retry_if_exception_type(TransientError),
        sleep=sleep, reraise=True, before_sleep=before_sleep,
    )
