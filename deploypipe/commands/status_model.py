"""The types of ``status``: what it reports about each service (``--json``) and the thresholds it judges by."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from deploypipe.errors import UsageError
from deploypipe.render.models import Deploy

__all__ = ["Behind", "CronRuns", "DeployView", "RunView", "ServiceStatus", "StatusReport", "Thresholds"]

_FROZEN = ConfigDict(frozen=True)


class DeployView(BaseModel):
    model_config = _FROZEN

    id: str
    status: str
    commit: str | None = None
    trigger: str = ""
    created_at: datetime | None = None
    finished_at: datetime | None = None

    @classmethod
    def of(cls, deploy: Deploy) -> DeployView:
        return cls(id=deploy.id, status=deploy.status, commit=deploy.commit_id, trigger=deploy.trigger,
                   created_at=deploy.created_at, finished_at=deploy.finished_at)


class Behind(BaseModel):
    """How far the live commit trails the branch head; ``commits`` is None when the checkout cannot tell (``note``)."""

    model_config = _FROZEN

    branch: str | None = None
    ref: str | None = None
    commits: int | None = None
    hours: float | None = Field(None, description="Age of the oldest commit on the branch that is not live.")
    oldest_missing_at: str | None = None
    note: str = ""


class RunView(BaseModel):
    """One ended run of a cron job, from its ``cron_job_run_ended`` (and ``cron_job_run_started``) event."""

    model_config = _FROZEN

    id: str
    status: str = Field(description="successful, unsuccessful or canceled.")
    reason: str = Field("", description="How it failed, in words (exit status 1, ...); empty when it did not.")
    started_at: datetime | None = None
    ended_at: datetime | None = None


class CronRuns(BaseModel):
    """A cron job's runs that ended since its live release went live."""

    model_config = _FROZEN

    last: RunView | None = Field(None, description="The last run that ended; None when none has yet.")
    ended: int = Field(0, description="Runs that ended since the live release went live.")
    failing: int = Field(0, description="Consecutive unsuccessful runs up to the last one (canceled runs are "
                                        "skipped); 0 unless the last run was unsuccessful.")
    failing_since: datetime | None = Field(None, description="When the first of those ended.")
    at_least: bool = Field(False, description="Render listed only the newest events: the streak may be longer.")


class ServiceStatus(BaseModel):
    model_config = _FROZEN

    key: str
    name: str
    service_id: str
    type: str = Field("", description="Render's service type (web_service, background_worker, cron_job, ...).")
    branch: str | None = None
    auto_deploy: bool = False
    live: DeployView | None = None
    behind: Behind = Field(default_factory=Behind)
    in_progress: DeployView | None = None
    recent: list[DeployView] = Field(default_factory=list, description="The last deploys, newest first.")
    failed: list[DeployView] = Field(default_factory=list, description="Failed deploys since the last success.")
    problems: list[str] = Field(default_factory=list,
                                description="failed_deploys, behind_commits, behind_hours, crashing, cron_failing.")
    crashes: int = Field(0, description="Instance failures of the live release within the crash window.")
    crash: str = Field("", description="The last one, in words (exit status 1, restarted, ...).")
    cron: CronRuns | None = Field(None, description="A cron job's runs since its live release went live.")
    error_line: str = Field("", description="The app's last error line in the crash window, or of the failed run.")
    message: str = ""


class StatusReport(BaseModel):
    model_config = _FROZEN

    pipeline: str
    checked_at: str
    healthy: bool
    exit_code: int
    fingerprint: str = Field("", description="Identifies the current problems; empty when healthy.")
    services: list[ServiceStatus]
    notification: str = ""


@dataclass(frozen=True)
class Thresholds:
    failed: int = 2
    max_behind_commits: int | None = None
    max_behind_hours: float | None = None
    history: int = 10
    crash_window_s: float = 900.0

    @classmethod
    def parse(cls, failed: Any = None, commits: Any = None, hours: Any = None, history: Any = None) -> Thresholds:
        """From command-line strings; UsageError (exit 2) for a value that is not a number in range."""
        def number(name: str, value: Any, kind: type, default: Any, least: int) -> Any:
            try:
                parsed = default if value in (None, "") else kind(value)
            except ValueError:
                parsed = least - 1
            if parsed is not None and parsed < least:
                raise UsageError(f"{name} {value}: expected a {'number' if kind is float else 'whole number'} "
                                 f">= {least}", where="status")
            return parsed

        return cls(number("--failed", failed, int, 2, 1), number("--max-behind-commits", commits, int, None, 0),
                   number("--max-behind-hours", hours, float, None, 0), number("--history", history, int, 10, 1))
