"""Records of the local Render's state: services, deploys, jobs, Postgres, and the Runtime protocol."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from deploypipe.emulator.blueprint import ServiceDef
from deploypipe.emulator.ids import iso

if TYPE_CHECKING:  # pragma: no cover
    from deploypipe.emulator.state import Emulator

__all__ = ["FAILED_STATUS", "IN_PROGRESS", "PHASE_STATUS", "STATUS_INT", "DeployRec", "JobRec", "PostgresRec",
           "Runtime", "ServiceRec"]

IN_PROGRESS = {"created", "build_in_progress", "pre_deploy_in_progress", "update_in_progress"}
FAILED_STATUS = {"build": "build_failed", "pre_deploy": "pre_deploy_failed", "update": "update_failed"}
PHASE_STATUS = {"build": "build_in_progress", "pre_deploy": "pre_deploy_in_progress", "update": "update_in_progress"}
# The deprecated integer ``status`` Render still requires in *_ended event details. Its values are not documented;
# these are the emulator's own (inference), kept stable: succeeded 2, failed 3, canceled 4.
STATUS_INT = {"succeeded": 2, "failed": 3, "canceled": 4}


@dataclass
class DeployRec:
    id: str
    service_id: str
    status: str
    trigger: str
    commit_id: str | None
    commit_message: str | None
    created_at: float
    updated_at: float
    started_at: float | None = None
    finished_at: float | None = None
    build_id: str | None = None
    rollback_of: str | None = None
    fail_at: str | None = None  # injected: phase at which this deploy fails
    clear_cache: bool = False

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "status": self.status, "trigger": self.trigger,
                                "createdAt": iso(self.created_at), "updatedAt": iso(self.updated_at)}
        if self.commit_id:
            data["commit"] = {"id": self.commit_id, "message": self.commit_message or "", "createdAt": iso(self.created_at)}
        if self.started_at:
            data["startedAt"] = iso(self.started_at)
        if self.finished_at:
            data["finishedAt"] = iso(self.finished_at)
        return data


@dataclass
class JobRec:
    id: str
    service_id: str
    start_command: str
    status: str
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        data = {"id": self.id, "serviceId": self.service_id, "startCommand": self.start_command,
                "planId": "plan-srv-004", "status": self.status, "createdAt": iso(self.created_at)}
        if self.started_at:
            data["startedAt"] = iso(self.started_at)
        if self.finished_at:
            data["finishedAt"] = iso(self.finished_at)
        return data


@dataclass
class PostgresRec:
    id: str
    name: str
    database: str
    user: str
    password: str
    url: str
    version: str
    created_at: float
    exports: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ServiceRec:
    id: str
    spec: ServiceDef
    auto_deploy: bool
    created_at: float
    updated_at: float
    url: str = ""
    deploys: list[DeployRec] = field(default_factory=list)  # oldest first
    events: list[dict[str, Any]] = field(default_factory=list)
    jobs: list[JobRec] = field(default_factory=list)
    fail_next: str | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    def live(self) -> DeployRec | None:
        return next((d for d in reversed(self.deploys) if d.status == "live"), None)

    def in_progress(self) -> DeployRec | None:
        return next((d for d in self.deploys if d.status in IN_PROGRESS), None)


class Runtime(Protocol):
    """Moves deploys through their phases: simulated (clock-driven) or real local processes.

    ``start`` begins a deploy the emulator has just started (status ``created``); ``advance`` brings a service's
    deploys and jobs up to the clock's now (the simulated runtime's work; a no-op for real processes, which
    report from their threads); ``cancel``/``cancel_job`` stop the work; ``run_job`` runs a one-off job against
    the live build; ``restore`` serves a saved live deploy again after a restart; ``close`` stops everything.
    Runtimes report through ``Emulator.phase_started``/``phase_ended``/``finish``/``server_failed``/``job_status``.
    """

    def start(self, emulator: Emulator, service: ServiceRec, deploy: DeployRec) -> None: ...

    def advance(self, emulator: Emulator, service: ServiceRec) -> None: ...

    def cancel(self, emulator: Emulator, service: ServiceRec, deploy: DeployRec) -> None: ...

    def run_job(self, emulator: Emulator, service: ServiceRec, job: JobRec) -> None: ...

    def cancel_job(self, emulator: Emulator, service: ServiceRec, job: JobRec) -> None: ...

    def restore(self, emulator: Emulator, service: ServiceRec) -> None: ...

    def close(self) -> None: ...
