"""Typed values parsed leniently from Render's JSON: unknown fields ignored, optional fields optional.

Timestamps are parsed here, once, into aware ``datetime`` values (pydantic's ``AwareDatetime``: ``Z`` or an offset,
digits past microseconds dropped); every module after the client holds a ``datetime``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping

from pydantic import AwareDatetime, TypeAdapter, ValidationError

__all__ = [
    "CronJobRun",
    "Deploy",
    "DeployStatus",
    "Job",
    "Postgres",
    "PostgresConnectionInfo",
    "PostgresExport",
    "RecoveryInfo",
    "Service",
    "ServiceEvent",
    "parse_time",
]

_MOMENT: TypeAdapter[datetime] = TypeAdapter(AwareDatetime)


def parse_time(value: str) -> datetime:
    """An aware datetime from Render's ISO 8601 text; ValueError when it is not one."""
    try:
        return _MOMENT.validate_python(value.strip())
    except ValidationError as exc:
        raise ValueError(f"not an ISO 8601 time with a zone: {value!r}") from exc


class DeployStatus:
    """Deploy statuses and the sets Render's own CLI uses (render-oss/cli pkg/deploy)."""

    CREATED = "created"
    QUEUED = "queued"
    BUILD_IN_PROGRESS = "build_in_progress"
    PRE_DEPLOY_IN_PROGRESS = "pre_deploy_in_progress"
    UPDATE_IN_PROGRESS = "update_in_progress"
    LIVE = "live"
    DEACTIVATED = "deactivated"
    BUILD_FAILED = "build_failed"
    PRE_DEPLOY_FAILED = "pre_deploy_failed"
    UPDATE_FAILED = "update_failed"
    CANCELED = "canceled"

    TERMINAL = frozenset({"build_failed", "canceled", "deactivated", "live", "pre_deploy_failed", "update_failed"})
    SUCCESS = frozenset({"live", "deactivated"})
    FAILURE = frozenset({"build_failed", "update_failed", "pre_deploy_failed", "canceled"})
    IN_PROGRESS = frozenset({"created", "queued", "build_in_progress", "pre_deploy_in_progress", "update_in_progress"})


def _text(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    return None if value is None else str(value)


def _when(data: Mapping[str, Any], key: str) -> datetime | None:
    """The timestamp at ``key``; None when absent or unreadable (lenient, like every optional field)."""
    value = data.get(key)
    if not value:
        return None
    try:
        return parse_time(str(value))
    except ValueError:
        return None


@dataclass(frozen=True)
class Service:
    """A Render service; ``url`` comes from ``serviceDetails.url``; ``owner_id`` is its workspace (logs need it)."""

    id: str
    name: str
    type: str = ""
    owner_id: str = ""
    auto_deploy: bool = False
    url: str | None = None
    branch: str | None = None
    repo: str | None = None
    suspended: bool = False

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Service:
        details = data.get("serviceDetails") or {}
        trigger = data.get("autoDeployTrigger")
        auto = data.get("autoDeploy") == "yes" and trigger != "off"
        return cls(id=str(data["id"]), name=str(data.get("name") or ""), type=str(data.get("type") or ""),
                   owner_id=str(data.get("ownerId") or ""), auto_deploy=auto, url=_text(details, "url") or None,
                   branch=_text(data, "branch"), repo=_text(data, "repo"),
                   suspended=data.get("suspended") == "suspended")


@dataclass(frozen=True)
class Deploy:
    """One deploy of a service; ``commit_id`` is None for image deploys or when Render omits it."""

    id: str
    status: str = ""
    trigger: str = ""
    commit_id: str | None = None
    commit_message: str | None = None
    created_at: datetime | None = None
    finished_at: datetime | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Deploy:
        commit = data.get("commit") or {}
        return cls(id=str(data["id"]), status=str(data.get("status") or ""), trigger=str(data.get("trigger") or ""),
                   commit_id=_text(commit, "id"), commit_message=_text(commit, "message"),
                   created_at=_when(data, "createdAt"), finished_at=_when(data, "finishedAt"))

    @property
    def terminal(self) -> bool:
        return self.status in DeployStatus.TERMINAL

    @property
    def succeeded(self) -> bool:
        return self.status in DeployStatus.SUCCESS

    @property
    def in_progress(self) -> bool:
        return self.status in DeployStatus.IN_PROGRESS


@dataclass(frozen=True)
class CronJobRun:
    """A run of a cron job: ``pending`` while it runs, then ``successful``, ``unsuccessful`` or ``canceled``."""

    id: str
    status: str = ""
    started_at: datetime | None = None
    finished_at: datetime | None = None
    triggered_by: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CronJobRun:
        return cls(id=str(data["id"]), status=str(data.get("status") or ""), started_at=_when(data, "startedAt"),
                   finished_at=_when(data, "finishedAt"), triggered_by=_text(data, "triggeredBy"))


@dataclass(frozen=True)
class Job:
    """A one-off job run on a service's latest successful build."""

    id: str
    service_id: str = ""
    start_command: str = ""
    status: str | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Job:
        return cls(id=str(data["id"]), service_id=str(data.get("serviceId") or ""),
                   start_command=str(data.get("startCommand") or ""), status=_text(data, "status"),
                   created_at=_when(data, "createdAt"), started_at=_when(data, "startedAt"),
                   finished_at=_when(data, "finishedAt"))


@dataclass(frozen=True)
class ServiceEvent:
    """A service event (``deploy_ended``, ``build_ended``, ...) with its free-form ``details``."""

    id: str
    type: str
    timestamp: datetime | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ServiceEvent:
        return cls(id=str(data["id"]), type=str(data.get("type") or ""), timestamp=_when(data, "timestamp"),
                   details=dict(data.get("details") or {}))


@dataclass(frozen=True)
class Postgres:
    """A Render Postgres instance; ``status`` is creating, available, recovery_failed, ... (databaseStatus)."""

    id: str
    name: str
    status: str = ""
    version: str | None = None
    database_name: str | None = None
    database_user: str | None = None
    plan: str | None = None
    region: str | None = None
    created_at: datetime | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Postgres:
        return cls(id=str(data["id"]), name=str(data.get("name") or ""), status=str(data.get("status") or ""),
                   version=_text(data, "version"), database_name=_text(data, "databaseName"),
                   database_user=_text(data, "databaseUser"), plan=_text(data, "plan"), region=_text(data, "region"),
                   created_at=_when(data, "createdAt"))

    @property
    def available(self) -> bool:
        return self.status == "available"


_MASK = "***"


@dataclass(frozen=True, repr=False)
class PostgresConnectionInfo:
    """Connection info of a Render Postgres: every field is a secret, so ``repr`` masks them all."""

    password: str
    internal_connection_string: str
    external_connection_string: str
    psql_command: str = ""

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PostgresConnectionInfo:
        return cls(password=str(data.get("password") or ""),
                   internal_connection_string=str(data.get("internalConnectionString") or ""),
                   external_connection_string=str(data.get("externalConnectionString") or ""),
                   psql_command=str(data.get("psqlCommand") or ""))

    def __repr__(self) -> str:
        return (f"PostgresConnectionInfo(password={_MASK!r}, internal_connection_string={_MASK!r}, "
                f"external_connection_string={_MASK!r}, psql_command={_MASK!r})")

    __str__ = __repr__


@dataclass(frozen=True)
class PostgresExport:
    """A logical export of a Render Postgres; ``url`` downloads it (when ready)."""

    id: str
    created_at: datetime | None = None
    url: str | None = field(default=None, repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PostgresExport:
        return cls(id=str(data["id"]), created_at=_when(data, "createdAt"), url=_text(data, "url"))


@dataclass(frozen=True)
class RecoveryInfo:
    """Point-in-time recovery availability: ``status`` is AVAILABLE, BACKUP_NOT_READY or NOT_AVAILABLE."""

    status: str
    starts_at: datetime | None = None

    @property
    def available(self) -> bool:
        return self.status == "AVAILABLE"

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RecoveryInfo:
        return cls(status=str(data.get("recoveryStatus") or "NOT_AVAILABLE"), starts_at=_when(data, "startsAt"))
