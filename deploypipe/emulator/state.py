"""The local Render's state: services, deploys, events and jobs, and the deploy lifecycle rules.

Rules kept from Render: one deploy in progress per service (later ones wait
as ``queued``); a new deploy replaces the live one only when it is live (the
old one becomes ``deactivated``); a failed deploy leaves the old one live and
serving; a rollback is a new deploy with ``trigger: rollback`` that reuses the
target deploy's build; an API rollback leaves ``autoDeploy`` untouched. The
*runtime* (simulated or real processes) moves deploys through their phases.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import structlog

from deploypipe.emulator.blueprint import ServiceDef
from deploypipe.emulator.ids import iso, new_id

__all__ = ["DeployRec", "Emulator", "JobRec", "PostgresRec", "Runtime", "ServiceRec"]

log = structlog.get_logger("deploypipe.emulator")

IN_PROGRESS = {"created", "build_in_progress", "pre_deploy_in_progress", "update_in_progress"}
FAILED_STATUS = {"build": "build_failed", "pre_deploy": "pre_deploy_failed", "update": "update_failed"}


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
    """Moves deploys through their phases: simulated (clock-driven) or real local processes."""

    def start(self, emulator: "Emulator", service: ServiceRec, deploy: DeployRec) -> None: ...

    def advance(self, emulator: "Emulator", service: ServiceRec) -> None: ...

    def cancel(self, emulator: "Emulator", service: ServiceRec, deploy: DeployRec) -> None: ...

    def run_job(self, emulator: "Emulator", service: ServiceRec, job: JobRec) -> None: ...

    def restore(self, emulator: "Emulator", service: ServiceRec) -> None: ...

    def close(self) -> None: ...


class Emulator:
    """Thread-safe state of the local Render. ``clock`` returns epoch seconds (inject a fake one in tests)."""

    def __init__(self, *, runtime: Runtime | None = None, clock: Callable[[], float] = time.time,
                 api_keys: tuple[str, ...] = ("rnd_test_key",), owner_id: str = "tea-local0000000000000000",
                 state_file: Path | None = None):
        from deploypipe.emulator.faults import Faults
        from deploypipe.emulator.runtime import SimulatedRuntime

        self.lock = threading.RLock()
        self.clock = clock
        self.runtime: Runtime = runtime or SimulatedRuntime()
        self.api_keys = set(api_keys)
        self.owner_id = owner_id
        self.services: dict[str, ServiceRec] = {}
        self.postgres: dict[str, PostgresRec] = {}
        self.faults = Faults(clock=clock)
        self.state_file = state_file

    # -- setup -------------------------------------------------------------------------
    def add_service(self, spec: ServiceDef, *, url: str = "", service_id: str | None = None) -> ServiceRec:
        with self.lock:
            now = self.clock()
            auto = spec.autoDeploy if spec.autoDeploy is not None else spec.autoDeployTrigger not in ("off",)
            service = ServiceRec(id=service_id or new_id("srv"), spec=spec, auto_deploy=bool(auto), created_at=now,
                                 updated_at=now, url=url)
            self.services[service.id] = service
            return service

    def add_postgres(self, rec: PostgresRec) -> None:
        with self.lock:
            self.postgres[rec.id] = rec

    def service(self, service_id: str) -> ServiceRec | None:
        with self.lock:
            service = self.services.get(service_id)
            if service is not None:
                self.runtime.advance(self, service)
            return service

    # -- events ------------------------------------------------------------------------
    def event(self, service: ServiceRec, kind: str, **details: Any) -> None:
        with self.lock:
            service.events.append({"id": new_id("evt"), "timestamp": iso(self.clock()), "serviceId": service.id,
                                   "type": kind, "details": details})

    # -- deploys -----------------------------------------------------------------------
    def trigger(self, service: ServiceRec, *, commit_id: str | None, commit_message: str | None = None,
                trigger: str = "api", build_id: str | None = None, rollback_of: str | None = None) -> tuple[DeployRec, bool]:
        """Create a deploy; returns (deploy, queued). It starts now unless another is in progress."""
        with self.lock:
            self.runtime.advance(self, service)
            now = self.clock()
            deploy = DeployRec(id=new_id("dep"), service_id=service.id, status="created", trigger=trigger,
                               commit_id=commit_id, commit_message=commit_message, created_at=now, updated_at=now,
                               build_id=build_id, rollback_of=rollback_of)
            if service.fail_next and trigger != "rollback":
                deploy.fail_at, service.fail_next = service.fail_next, None
            service.deploys.append(deploy)
            queued = service.in_progress() not in (None, deploy)
            if queued:
                deploy.status = "queued"
            else:
                self._start(service, deploy)
            self.save()
            return deploy, queued

    def _start(self, service: ServiceRec, deploy: DeployRec) -> None:
        deploy.started_at = self.clock()
        rollback = deploy.trigger == "rollback"
        self.event(service, "deploy_started", deployId=deploy.id,
                   trigger={"firstBuild": len(service.deploys) == 1, "envUpdated": False, "manual": deploy.trigger == "manual",
                            "deployedByRender": False, "clearCache": False, "rollback": rollback,
                            **({"rollbackTargetDeployId": deploy.rollback_of} if rollback else {})})
        self.runtime.start(self, service, deploy)

    def set_status(self, service: ServiceRec, deploy: DeployRec, status: str) -> None:
        with self.lock:
            if deploy.status == status:
                return
            deploy.status = status
            deploy.updated_at = self.clock()
            self.save()

    def finish(self, service: ServiceRec, deploy: DeployRec, status: str, *, reason: dict[str, Any] | None = None) -> None:
        """Terminal transition: ``live`` replaces the previous live deploy; failures leave it serving."""
        with self.lock:
            if deploy.status not in IN_PROGRESS and deploy.status != "queued":
                return
            now = self.clock()
            if status == "live":
                for other in service.deploys:
                    if other is not deploy and other.status == "live":
                        other.status, other.updated_at = "deactivated", now
            deploy.status, deploy.finished_at, deploy.updated_at = status, now, now
            outcome = {"live": "succeeded", "canceled": "canceled"}.get(status, "failed")
            self.event(service, "deploy_ended", deployId=deploy.id, deployStatus=outcome, reason=reason or {})
            nxt = next((d for d in service.deploys if d.status == "queued"), None)
            if nxt is not None:
                self._start(service, nxt)
            self.save()

    def cancel(self, service: ServiceRec, deploy: DeployRec) -> None:
        with self.lock:
            if deploy.status == "queued":
                self.finish(service, deploy, "canceled")
            elif deploy.status in IN_PROGRESS:
                self.runtime.cancel(self, service, deploy)
                self.finish(service, deploy, "canceled")

    def rollback(self, service: ServiceRec, target: DeployRec) -> tuple[DeployRec, bool]:
        return self.trigger(service, commit_id=target.commit_id, commit_message=target.commit_message,
                            trigger="rollback", build_id=target.build_id, rollback_of=target.id)

    # -- jobs ----------------------------------------------------------------------------
    def create_job(self, service: ServiceRec, command: str) -> JobRec:
        with self.lock:
            job = JobRec(id=new_id("job"), service_id=service.id, start_command=command, status="pending",
                         created_at=self.clock())
            service.jobs.append(job)
        self.runtime.run_job(self, service, job)
        return job

    # -- persistence -------------------------------------------------------------------
    def save(self) -> None:
        """Write services, deploys and events to ``state_file`` (so the local default keeps history across runs)."""
        if self.state_file is None:
            return
        with self.lock:
            data = {"services": [{"id": s.id, "name": s.name, "auto_deploy": s.auto_deploy, "created_at": s.created_at,
                                  "url": s.url, "deploys": [asdict(d) for d in s.deploys], "events": s.events[-500:]}
                                 for s in self.services.values()]}
            tmp = self.state_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(data))
            tmp.replace(self.state_file)

    def load(self) -> None:
        """Restore saved services (matched by name) and restart what was live; in-flight deploys become failed."""
        if self.state_file is None or not self.state_file.exists():
            return
        data = json.loads(self.state_file.read_text())
        with self.lock:
            by_name = {s.name: s for s in self.services.values()}
            for saved in data.get("services", []):
                service = by_name.get(saved["name"])
                if service is None:
                    continue
                self.services.pop(service.id)
                service.id, service.auto_deploy, service.created_at = saved["id"], saved["auto_deploy"], saved["created_at"]
                service.url = service.url or saved.get("url", "")
                service.deploys = [DeployRec(**d) for d in saved["deploys"]]
                service.events = saved.get("events", [])
                for deploy in service.deploys:
                    if deploy.status in IN_PROGRESS or deploy.status == "queued":
                        deploy.status = "canceled"
                self.services[service.id] = service
                self.runtime.restore(self, service)
