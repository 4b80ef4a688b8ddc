"""The error tree of deploypipe and the exit codes every task returns.

    DeployPipeError                  root; ``where``, ``message``, ``hint``
    ├── UsageError                   bad command-line usage (exit 2)
    ├── SpecError                    invalid pipeline file or configuration (exit 2)
    ├── LockHeldError                another run holds the release lock (exit 1); ``holder``
    ├── ProviderError                the Render API said no; ``status_code``, ``error_id``, ``request``, ``response``
    │   ├── AuthenticationError      401/403: check RENDER_API_KEY
    │   ├── NotFoundError            404
    │   ├── ConflictError            409
    │   └── TransientProviderError   429, 5xx, connect/read failures (safe to retry); ``sent``
    │       └── RateLimitedError     429; ``retry_after_s``
    ├── StageFailed                  a stage ran and a check said no; ``production_changed``, ``outputs``
    ├── StageErrored                 a stage could not run (I/O, tool missing, ...); same fields
    │   └── TransientStageError      could not run for a passing reason (retryable)
    └── RollbackFailed               a compensation failed or could not be verified (exit 4)

Every field is declared: there is no free bag of attributes, so a misspelt
keyword is a TypeError, not a silently different rollback decision. Messages
are shaped ``where: what; expected ...; hint`` so one line tells the operator
where to look and what to do.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any, Mapping

__all__ = [
    "AuthenticationError",
    "ConflictError",
    "DeployPipeError",
    "ExitCode",
    "LockHeldError",
    "NotFoundError",
    "ProviderError",
    "RateLimitedError",
    "RollbackFailed",
    "SpecError",
    "StageErrored",
    "StageFailed",
    "TransientError",
    "TransientProviderError",
    "TransientStageError",
    "UsageError",
]


class ExitCode(IntEnum):
    """Exit codes shared by every task (documented in the README)."""

    DEPLOYED = 0  # deployed and verified
    BLOCKED = 1  # blocked before production changed
    INVALID = 2  # invalid usage, pipeline or configuration; nothing ran
    ROLLED_BACK = 3  # failed after production changed, rolled back and verified
    NEEDS_HUMAN = 4  # rollback failed or unverified: a human must act


class DeployPipeError(Exception):
    """Root of every error deploypipe raises on purpose."""

    exit_code: ExitCode = ExitCode.INVALID

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None):
        self.message = message
        self.where = where
        self.hint = hint
        super().__init__(self.render())

    def render(self) -> str:
        """One line: ``where: what; hint``."""
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.hint:
            text = f"{text}; hint: {self.hint}"
        return text

    def detail(self) -> str:
        """The message and hint without ``where`` (for a summary that names the place itself)."""
        return self.message + (f"; hint: {self.hint}" if self.hint else "")


class TransientError(Exception):
    """Marker mixin: the failure is passing and the operation may be retried."""


class UsageError(DeployPipeError):
    """The command line was used wrongly; nothing ran."""

    exit_code = ExitCode.INVALID


class SpecError(DeployPipeError):
    """The pipeline file or configuration is invalid; nothing ran."""

    exit_code = ExitCode.INVALID


class LockHeldError(DeployPipeError):
    """Another run holds the release lock for the same target; ``holder`` says who, where and since when."""

    exit_code = ExitCode.BLOCKED

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None,
                 holder: Mapping[str, Any] | None = None):
        self.holder: Mapping[str, Any] = dict(holder or {})
        super().__init__(message, where=where, hint=hint)


class ProviderError(DeployPipeError):
    """The Render API (or the local Render) answered with an error, or could not be reached.

    ``status_code`` and Render's ``error_id`` come from the answer (None without
    one); ``request`` / ``response`` are the httpx objects when there were any.
    """

    exit_code = ExitCode.BLOCKED

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None,
                 status_code: int | None = None, error_id: str | None = None, request: Any = None,
                 response: Any = None):
        self.status_code = status_code
        self.error_id = error_id
        self.request = request
        self.response = response
        super().__init__(message, where=where, hint=hint)


class AuthenticationError(ProviderError):
    """401/403: the API key is missing, invalid or lacks access."""


class NotFoundError(ProviderError):
    """404: the service, deploy or database does not exist (or is not visible)."""


class ConflictError(ProviderError):
    """409: the resource's current state conflicts with the request."""


class TransientProviderError(ProviderError, TransientError):
    """A passing failure: 5xx, dropped connection, read timeout, rate limit.

    ``sent`` is True when Render may have received and processed the request
    (an answer of 5xx, or no answer after sending): a non-idempotent request
    must then be looked up, never simply re-sent.
    """

    def __init__(self, message: str, *, sent: bool, **kwargs: Any):
        self.sent = sent
        super().__init__(message, **kwargs)


class RateLimitedError(TransientProviderError):
    """429: slow down; ``retry_after_s`` says for how long when Render told us."""

    def __init__(self, message: str, *, retry_after_s: float | None = None, **kwargs: Any):
        self.retry_after_s = retry_after_s
        super().__init__(message, sent=False, **kwargs)


class _StageError(DeployPipeError):
    """A stage's failure: whether it had already changed production, and the outputs its compensation needs.

    ``production_changed=True`` makes the runner compensate this stage (with
    ``outputs``) as well as every earlier stage that changed production.
    """

    exit_code = ExitCode.BLOCKED

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None,
                 production_changed: bool = False, outputs: Any = None):
        self.production_changed = production_changed
        self.outputs = outputs
        super().__init__(message, where=where, hint=hint)


class StageFailed(_StageError):
    """A stage ran and one of its checks said no (e.g. lint error, unhealthy release)."""


class StageErrored(_StageError):
    """A stage could not run (tool missing, I/O error, unexpected answer)."""


class TransientStageError(StageErrored, TransientError):
    """A stage could not run for a passing reason; the runner may retry it."""


class RollbackFailed(DeployPipeError):
    """A compensation failed or could not be verified: a human must act.

    ``pending`` is True when the rollback deploy was triggered but its end is
    unknown (it may still go live); ``deploy_id`` names it.
    """

    exit_code = ExitCode.NEEDS_HUMAN

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None, pending: bool = False,
                 deploy_id: str | None = None):
        self.pending = pending
        self.deploy_id = deploy_id
        super().__init__(message, where=where, hint=hint)
