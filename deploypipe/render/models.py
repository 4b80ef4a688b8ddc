"""Typed values parsed leniently from Render's JSON (unknown fields ignored, optional fields optional)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

__all__ = [
    "Deploy", "DeployStatus", "Job", "Postgres", "PostgresConnectionInfo", "Service", "ServiceEvent",
]


class DeployStatus:
    """Deploy statuses and the sets Render's own CLI uses (pkg/deploy/util.go)."""

    TERMINAL = frozenset({"build_failed", "canceled", "deactivated", "live", "pre_deploy_failed", "update_failed"})
    SUCCESS = frozenset({"live", "deactivated"})
    FAILURE = frozenset({"build_failed", "update_failed", "pre_deploy_failed", "canceled"})
    IN_PROGRESS = frozenset({"created", "queued", "build_in_progress", "pre_deploy_in_progress", "update_in_progress"})
    CANCELLABLE = frozenset({"created", "build_in_progress", "update_in_progress", "pre_deploy_in_progress"})


@dataclass(frozen=True)
class Service:
    id: str
    name: str
    type: str = ""
    auto_deploy: bool = True
    url: str | None = None
    branch: str | None = None
    repo: str | None = None
    suspended: bool = False
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Service":
        details = data.get("serviceDetails") or {}
        return cls(id=data["id"], name=data.get("name", ""), type=data.get("type", ""),
                   auto_deploy=data.get("autoDeploy", "yes") == "yes", url=details.get("url"),
                   branch=data.get("branch"), repo=data.get("repo"),
                   suspended=data.get("suspended") == "suspended", raw=data)


@dataclass(frozen=True)
class Deploy:
    id: str
    status: str = ""
    trigger: str = ""
    commit_id: str | None = None
    commit_message: str | None = None
    created_at: str | None = None
    finished_at: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Deploy":
        commit = data.get("commit") or {}
        return cls(id=data["id"], status=data.get("status", ""), trigger=data.get("trigger", ""),
                   commit_id=commit.get("id"), commit_message=commit.get("message"),
                   created_at=data.get("createdAt"), finished_at=data.get("finishedAt"))

    @property
    def terminal(self) -> bool:
        return self.status in DeployStatus.TERMINAL

    @property
    def succeeded(self) -> bool:
        return self.status in DeployStatus.SUCCESS

    def record(self, service: str) -> dict[str, Any]:
        """The report's deploy record."""
        return {"service": service, "deploy_id": self.id, "commit": self.commit_id, "status": self.status}


@dataclass(frozen=True)
class Job:
    id: str
    service_id: str
    start_command: str
    status: str | None = None
    created_at: str | None = None
    finished_at: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Job":
        return cls(id=data["id"], service_id=data.get("serviceId", ""), start_command=data.get("startCommand", ""),
                   status=data.get("status"), created_at=data.get("createdAt"), finished_at=data.get("finishedAt"))


@dataclass(frozen=True)
class ServiceEvent:
    id: str
    type: str
    timestamp: str
    details: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "ServiceEvent":
        return cls(id=data["id"], type=data.get("type", ""), timestamp=data.get("timestamp", ""),
                   details=data.get("details") or {})


@dataclass(frozen=True)
class Postgres:
    id: str
    name: str
    status: str = ""
    version: str | None = None
    database_name: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Postgres":
        return cls(id=data["id"], name=data.get("name", ""), status=data.get("status", ""),
                   version=data.get("version"), database_name=data.get("databaseName"))


@dataclass(frozen=True)
class PostgresConnectionInfo:
    """Connection info is secret: its repr never shows the password or connection strings."""

    password: str = field(repr=False)
    internal_connection_string: str = field(repr=False)
    external_connection_string: str = field(repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "PostgresConnectionInfo":
        return cls(password=data.get("password", ""), internal_connection_string=data.get("internalConnectionString", ""),
                   external_connection_string=data.get("externalConnectionString", ""))
