"""Records of the local Render's state: services, deploys, jobs, cron runs and Postgres, with their JSON shapes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from deploypipe.emulator.blueprint import ServiceDef
from deploypipe.emulator.ids import iso

__all__ = ["FAILED_STATUS", "IN_PROGRESS", "PHASE_STATUS", "STATUS_INT", "CronRunRec", "CronState", "DeployRec",
           "JobRec", "PitrState", "PostgresRec", "ServiceRec"]

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
            data["commit"] = {"id": self.commit_id, "message": self.commit_message or "",
                              "createdAt": iso(self.created_at)}
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
class CronRunRec:
    """A run of a cron job (Render's ``cronJobRun``): ``pending`` while it runs, then successful | unsuccessful |
    canceled."""

    id: str
    service_id: str
    status: str
    started_at: float
    finished_at: float | None = None
    triggered_by: str | None = None  # "api" for POST /cron-jobs/{id}/runs; None for a scheduled run
    canceled_by: str | None = None
    commit_id: str | None = None  # the live deploy's commit the run started from
    exit_code: int | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "status": self.status, "startedAt": iso(self.started_at)}
        if self.finished_at is not None:
            data["finishedAt"] = iso(self.finished_at)
        if self.triggered_by:
            data["triggeredBy"] = self.triggered_by
        if self.canceled_by:
            data["canceledBy"] = self.canceled_by
        return data


@dataclass
class CronState:
    """The cron runs of one local Render (``cron.py``) and its knobs for simulated runs.

    ``runs``: service id -> its runs, oldest first; ``next_due``: service id -> when its schedule is next due
    (emulator clock); ``processes``: run id -> the process of a run on the real runtime. A simulated run (any runtime
    but ``ProcessRuntime``) lasts ``sim_run_s`` and exits with ``sim_exit[commit]`` (default 0), printing
    ``sim_output[commit]``.
    """

    runs: dict[str, list[CronRunRec]] = field(default_factory=dict)
    next_due: dict[str, float] = field(default_factory=dict)
    processes: dict[str, Any] = field(default_factory=dict)
    threads: list[Any] = field(default_factory=list)
    sim_run_s: float = 0.0
    sim_exit: dict[str, int] = field(default_factory=dict)
    sim_output: dict[str, list[str]] = field(default_factory=dict)


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
    status: str = "available"
    plan: str = "basic_256mb"
    environment_id: str | None = None
    owned: bool = False  # the local Render created the database: deleting the instance drops it
    recovered_from: str | None = None  # a point-in-time recovery clone: the id of the database it was made from
    ready_at: float | None = None  # a clone stays "creating" until then (emulator clock)
    fail_next_recovery: bool = False  # injected: the next recovery made from this database fails


@dataclass
class PitrState:
    """Point-in-time recovery of the local Render (``recovery.py``): its knobs and the clones being copied.

    ``min_age_s``: a restoreTime must be at least this old (Render: 600, "not within the last 10 minutes");
    ``window_days``: how far back one can restore (Render: 3 on Hobby, 7 on Professional workspaces);
    ``creating_s``: how long a new clone stays ``creating`` on the emulator's clock.
    """

    min_age_s: float = 600.0
    window_days: float = 7.0
    creating_s: float = 2.0
    copies: dict[str, Any] = field(default_factory=dict)  # clone id -> the thread copying its data
    server: Any = None  # the embedded PostgreSQL holding the clones (``<data_dir>/pg``), started on demand


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
