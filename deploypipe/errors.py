"""The error tree of deploypipe and the exit codes every task returns.

    DeployPipeError                  root; carries ``where``, ``hint`` and structured ``attrs``
    ├── UsageError                   bad command-line usage (exit 2)
    ├── SpecError                    invalid pipeline file or configuration (exit 2)
    ├── LockHeldError                another run holds the deploy lock (exit 1)
    ├── ProviderError                the Render API said no
    │   ├── AuthenticationError      401/403: check RENDER_API_KEY
    │   ├── NotFoundError            404
    │   ├── ConflictError            409
    │   └── TransientProviderError   429, 5xx, connect/read failures (safe to retry)
    │       └── RateLimitedError     429 (carries ``retry_after_s``)
    ├── StageFailed                  a stage ran and a check said no
    ├── StageErrored                 a stage could not run (I/O, tool missing, ...)
    │   └── TransientStageError      could not run for a passing reason (retryable)
    └── RollbackFailed               a compensation failed or could not be verified (exit 4)

Messages are shaped ``where: what; expected ...; hint`` so one line tells the
operator where to look and what to do.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

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

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None, **attrs: Any):
        self.message = message
        self.where = where
        self.hint = hint
        self.attrs = attrs
        super().__init__(self.render())

    def render(self) -> str:
        """One line: ``where: what; hint``."""
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.hint:
            text = f"{text}; hint: {self.hint}"
        return text

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description for journals and reports."""
        data: dict[str, Any] = {"type": type(self).__name__, "message": self.render()}
        if self.where:
            data["where"] = self.where
        return data


class TransientError(Exception):
    """Marker mixin: the failure is passing and the operation may be retried."""


class UsageError(DeployPipeError):
    """The command line was used wrongly; nothing ran."""

    exit_code = ExitCode.INVALID


class SpecError(DeployPipeError):
    """The pipeline file or configuration is invalid; nothing ran."""

    exit_code = ExitCode.INVALID


class LockHeldError(DeployPipeError):
    """Another run holds the deploy lock for the same target."""

    exit_code = ExitCode.BLOCKED


class ProviderError(DeployPipeError):
    """The Render API (or the local Render) answered with an error.

    ``status_code``, ``method``, ``url`` and Render's ``error_id`` are kept in
    ``attrs``; the request and response objects (when any) in ``request`` /
    ``response``.
    """

    exit_code = ExitCode.BLOCKED

    def __init__(self, message: str, *, request: Any = None, response: Any = None, **kwargs: Any):
        self.request = request
        self.response = response
        super().__init__(message, **kwargs)

    @property
    def status_code(self) -> int | None:
        return self.attrs.get("status_code")


class AuthenticationError(ProviderError):
    """401/403: the API key is missing, invalid or lacks access."""


class NotFoundError(ProviderError):
    """404: the service, deploy or database does not exist (or is not visible)."""


class ConflictError(ProviderError):
    """409: the resource's current state conflicts with the request."""


class TransientProviderError(ProviderError, TransientError):
    """A passing failure: 5xx, dropped connection, read timeout, rate limit."""


class RateLimitedError(TransientProviderError):
    """429: slow down; ``retry_after_s`` says for how long when Render told us."""

    @property
    def retry_after_s(self) -> float | None:
        return self.attrs.get("retry_after_s")


class StageFailed(DeployPipeError):
    """A stage ran and one of its checks said no (e.g. lint error, unhealthy release).

    ``production_changed=True`` in attrs tells the runner that the stage had
    already changed production before failing, so its compensation must run.
    """

    exit_code = ExitCode.BLOCKED


class StageErrored(DeployPipeError):
    """A stage could not run (tool missing, I/O error, unexpected answer)."""

    exit_code = ExitCode.BLOCKED


class TransientStageError(StageErrored, TransientError):
    """A stage could not run for a passing reason; the runner may retry it."""


class RollbackFailed(DeployPipeError):
    """A compensation failed or could not be verified: a human must act."""

    exit_code = ExitCode.NEEDS_HUMAN
