"""The run report: one model of what a run did, built by the engine and read by every reporter.

``report.json`` is this model serialised once; ``--json`` prints it; the
console summary, ``history``, the CI summary, the webhook and the replays read
it back with :meth:`Report.load`. Stage outputs appear as the JSON of each
stage's typed ``Outputs``.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from deploypipe.errors import DeployPipeError, ExitCode
from deploypipe.stages.base import DeployRecord

__all__ = ["Diagnostic", "ErrorInfo", "Outcome", "Report", "RollbackItem", "RollbackReport", "StageReport",
           "StageStatus"]

StageStatus = Literal["not_run", "succeeded", "failed", "errored", "skipped", "interrupted", "from_run"]


class Outcome(StrEnum):
    """How a run ended; each outcome has one exit code."""

    RUNNING = "running"  # provisional, while finalizers (notify) run
    DEPLOYED = "deployed"
    UNCHANGED = "unchanged"  # nothing to release: the commit was live and no migration pending
    BLOCKED = "blocked"
    ROLLED_BACK = "rolled_back"
    NEEDS_HUMAN = "needs_human"
    ROLLBACK_VERIFIED = "rollback_verified"  # `rollback` by hand: done and verified
    ROLLBACK_FAILED = "rollback_failed"  # `rollback` by hand: failed or unverified

    @property
    def exit_code(self) -> ExitCode:
        return _EXIT[self]

    @property
    def succeeded(self) -> bool:
        return self in (Outcome.DEPLOYED, Outcome.UNCHANGED, Outcome.ROLLBACK_VERIFIED)


_EXIT = {Outcome.RUNNING: ExitCode.DEPLOYED, Outcome.DEPLOYED: ExitCode.DEPLOYED, Outcome.UNCHANGED: ExitCode.DEPLOYED,
         Outcome.BLOCKED: ExitCode.BLOCKED,
         Outcome.ROLLED_BACK: ExitCode.ROLLED_BACK, Outcome.NEEDS_HUMAN: ExitCode.NEEDS_HUMAN,
         Outcome.ROLLBACK_VERIFIED: ExitCode.DEPLOYED, Outcome.ROLLBACK_FAILED: ExitCode.NEEDS_HUMAN}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorInfo(_Model):
    """Why a stage failed: the exception's type and its one-line message."""

    type: str
    message: str
    where: str | None = None

    @classmethod
    def of(cls, exc: BaseException) -> ErrorInfo:
        if isinstance(exc, DeployPipeError):
            return cls(type=type(exc).__name__, message=exc.render(), where=exc.where)
        return cls(type=type(exc).__name__, message=str(exc) or type(exc).__name__)


class StageReport(_Model):
    id: str
    type: str
    status: StageStatus = "not_run"
    attempts: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_s: float = 0.0
    error: ErrorInfo | None = None
    outputs: dict[str, Any] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)
    summary: str = ""
    changed_production: bool = False

    @property
    def failed(self) -> bool:
        return self.status in ("failed", "errored")


class Diagnostic(_Model):
    """Why a release failed, in Render's own logs: the last lines of the deploy's build or app logs (redacted)."""

    stage: str
    service: str
    deploy_id: str | None = None
    kind: Literal["build", "app"]
    headline: str = Field("", description="The most telling line (e.g. the app's ImportError).")
    lines: list[str] = Field(default_factory=list, description="The last lines, oldest first.")


class RollbackItem(_Model):
    """One step of a rollback: a compensation, or the health re-verification after it."""

    stage: str
    type: str
    action: str
    verified: bool
    summary: str = ""
    details: dict[str, Any] = Field(default_factory=dict)


class RollbackReport(_Model):
    performed: bool = False
    verified: bool | None = None
    items: list[RollbackItem] = Field(default_factory=list)


class Report(_Model):
    """Everything a run did, as ``report.json`` holds it."""

    run_id: str
    pipeline: str
    pipeline_path: str = ""
    started_at: datetime
    finished_at: datetime | None = None
    outcome: Outcome
    exit_code: int
    message: str = ""
    resumed_from: str | None = None
    stages: list[StageReport] = Field(default_factory=list)
    deploys: list[DeployRecord] = Field(default_factory=list)
    rollback: RollbackReport = Field(default_factory=RollbackReport)
    diagnostics: list[Diagnostic] = Field(default_factory=list)
    run_dir: str = ""

    @property
    def report_path(self) -> Path:
        return Path(self.run_dir) / "report.json"

    def stage(self, stage_id: str) -> StageReport:
        return next(s for s in self.stages if s.id == stage_id)

    def failed_stages(self) -> list[StageReport]:
        return [s for s in self.stages if s.failed]

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def load(cls, path: Path) -> Report:
        return cls.model_validate_json(path.read_text(encoding="utf-8"))
