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
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import structlog

from deploypipe.emulator.blueprint import ServiceDef
from deploypipe.emulator.faults import Faults
from deploypipe.emulator.ids import iso, new_id
from deploypipe.emulator.lifecycle import Runtime
from deploypipe.emulator.records import (
    FAILED_STATUS,
    IN_PROGRESS,
    PHASE_STATUS,
    STATUS_INT,
    CronState,
    DeployRec,
    JobRec,
    PitrState,
    PostgresRec,
    ServiceRec,
)
from deploypipe.emulator.runtime import SimulatedRuntime
from deploypipe.emulator.telemetry import Telemetry

__all__ = ["FAILED_STATUS", "IN_PROGRESS", "PHASE_STATUS", "DeployRec", "Emulator", "JobRec", "PostgresRec", "Runtime",
           "ServiceRec"]

log = structlog.get_logger("deploypipe.emulator")


class Emulator:
    """Thread-safe state of the local Render. ``clock`` returns epoch seconds (inject a fake one in tests).

    Runtimes report progress through ``phase_started`` / ``phase_ended`` / ``finish`` (each takes an optional
    ``at`` timestamp so a lazily advanced simulation records when a phase really ended), which keep statuses and
    service events consistent: build_started/build_ended, pre_deploy_started/pre_deploy_ended, deploy_started/
    deploy_ended, server_available, server_failed, job_run_ended.
    """

    def __init__(self, *, runtime: Runtime | None = None, clock: Callable[[], float] = time.time,
                 api_keys: tuple[str, ...] = ("rnd_test_key",), owner_id: str = "tea-local0000000000000000",
                 state_file: Path | None = None, data_dir: Path | None = None, telemetry: Telemetry | None = None):
        self.lock = threading.RLock()
        self.clock = clock
        self.runtime: Runtime = runtime or SimulatedRuntime()
        self.api_keys = set(api_keys)
        self.owner_id = owner_id
        self.services: dict[str, ServiceRec] = {}
        self.postgres: dict[str, PostgresRec] = {}
        self.recovery = PitrState()  # point-in-time recovery knobs and clones (recovery.py)
        self.cron = CronState()  # cron job runs (cron.py)
        self.faults = Faults(clock=clock)
        self.telemetry = telemetry or Telemetry(clock)
        self.state_file = state_file
        self.data_dir = data_dir
        self.closing = threading.Event()
        self.on_close: list[Callable[[], None]] = []

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
        """The service with its deploys advanced to the clock's now (``None`` if unknown)."""
        with self.lock:
            service = self.services.get(service_id)
            if service is not None:
                self.runtime.advance(self, service)
            return service

    def all_services(self) -> list[ServiceRec]:
        with self.lock:
            for service in self.services.values():
                self.runtime.advance(self, service)
            return list(self.services.values())

    def close(self) -> None:
        """Stop every process, proxy and embedded database this emulator started."""
        self.closing.set()
        self.runtime.close()
        for stop in reversed(self.on_close):
            stop()
        self.on_close.clear()

    def __enter__(self) -> Emulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- events ------------------------------------------------------------------------
    def event(self, service: ServiceRec, kind: str, *, at: float | None = None, **details: Any) -> None:
        with self.lock:
            service.events.append({"id": new_id("evt"), "timestamp": iso(self.clock() if at is None else at),
                                   "serviceId": service.id, "type": kind, "details": details})

    def _trigger_details(self, service: ServiceRec, deploy: DeployRec) -> dict[str, Any]:
        rollback = deploy.trigger == "rollback"
        return {"firstBuild": service.deploys[0] is deploy, "envUpdated": False, "manual": deploy.trigger == "manual",
                "deployedByRender": False, "clearCache": deploy.clear_cache, "rollback": rollback,
                **({"rollbackTargetDeployId": deploy.rollback_of} if rollback and deploy.rollback_of else {}),
                **({"newCommit": deploy.commit_id} if deploy.commit_id else {})}

    # -- deploys -----------------------------------------------------------------------
    def trigger(self, service: ServiceRec, *, commit_id: str | None, commit_message: str | None = None,
                trigger: str = "api", build_id: str | None = None, rollback_of: str | None = None,
                clear_cache: bool = False) -> tuple[DeployRec, bool]:
        """Create a deploy; returns (deploy, queued). It starts now unless another is in progress."""
        with self.lock:
            self.runtime.advance(self, service)
            now = self.clock()
            deploy = DeployRec(id=new_id("dep"), service_id=service.id, status="created", trigger=trigger,
                               commit_id=commit_id, commit_message=commit_message, created_at=now, updated_at=now,
                               build_id=build_id, rollback_of=rollback_of, clear_cache=clear_cache)
            if service.fail_next and trigger != "rollback":
                deploy.fail_at, service.fail_next = service.fail_next, None
            service.deploys.append(deploy)
            queued = service.in_progress() not in (None, deploy)
            if queued:
                deploy.status = "queued"
            else:
                self._start(service, deploy, now)
            self.save()
            log.info("emulator_deploy_created", service=service.name, deploy_id=deploy.id, trigger=trigger,
                     commit=commit_id, queued=queued)
            return deploy, queued

    def _start(self, service: ServiceRec, deploy: DeployRec, at: float) -> None:
        deploy.started_at = deploy.updated_at = at
        if deploy.status == "queued":
            deploy.status = "created"
        self.event(service, "deploy_started", at=at, deployId=deploy.id, trigger=self._trigger_details(service, deploy))
        self.runtime.start(self, service, deploy)

    def phase_started(self, service: ServiceRec, deploy: DeployRec, phase: str, *, at: float | None = None) -> None:
        """``deploy`` enters ``phase`` (build | pre_deploy | update): its status and the phase's start event."""
        with self.lock:
            if deploy.status not in IN_PROGRESS or deploy.status == PHASE_STATUS[phase]:
                return
            deploy.status, deploy.updated_at = PHASE_STATUS[phase], self.clock() if at is None else at
            if phase == "build":
                self.event(service, "build_started", at=at, buildId=deploy.build_id or "",
                           trigger=self._trigger_details(service, deploy))
            elif phase == "pre_deploy":
                self.event(service, "pre_deploy_started", at=at, deployCommandExecutionId=f"dce-{deploy.id[4:]}",
                           deployId=deploy.id)
            self.save()

    def phase_ended(self, service: ServiceRec, deploy: DeployRec, phase: str, outcome: str, *,
                    reason: dict[str, Any] | None = None, at: float | None = None) -> None:
        """The end event of a build or pre-deploy phase (``outcome``: succeeded | failed | canceled)."""
        reason = reason or {}
        if phase == "build":
            self.event(service, "build_ended", at=at, buildId=deploy.build_id or "", buildStatus=outcome,
                       status=STATUS_INT[outcome], reason=reason)
        elif phase == "pre_deploy":
            self.event(service, "pre_deploy_ended", at=at, deployCommandExecutionId=f"dce-{deploy.id[4:]}",
                       deployId=deploy.id, preDeployStatus=outcome, status=STATUS_INT[outcome], reason=reason)

    def finish(self, service: ServiceRec, deploy: DeployRec, status: str, *, reason: dict[str, Any] | None = None,
               at: float | None = None) -> None:
        """Terminal transition: ``live`` replaces the previous live deploy; failures leave it serving."""
        with self.lock:
            if deploy.status not in IN_PROGRESS and deploy.status != "queued":
                return
            now = self.clock() if at is None else at
            if status == "live":
                for other in service.deploys:
                    if other is not deploy and other.status == "live":
                        other.status, other.updated_at = "deactivated", now
            deploy.status, deploy.finished_at, deploy.updated_at = status, now, now
            outcome = {"live": "succeeded", "canceled": "canceled"}.get(status, "failed")
            self.event(service, "deploy_ended", at=now, deployId=deploy.id, deployStatus=outcome,
                       status=STATUS_INT[outcome], reason=reason or {})
            if status == "live" and service.spec.type != "cron":  # a cron job's deploy starts no server
                self.event(service, "server_available", at=now)
            log.info("emulator_deploy_finished", service=service.name, deploy_id=deploy.id, status=status)
            nxt = next((d for d in service.deploys if d.status == "queued"), None)
            if nxt is not None:
                self._start(service, nxt, now)
            self.save()

    def server_failed(self, service: ServiceRec, reason: dict[str, Any], *, at: float | None = None,
                      instance: str | None = None) -> None:
        """An instance (``instance``, else an unnamed one) failed: a new one during its health checks, or the live
        one died. ``reason`` is deploy_ended's shape (``{"failure": {...}}``); server_failed carries the failure."""
        failure = reason.get("failure", reason)
        self.event(service, "server_failed", at=at, instanceID=instance or f"{service.id}-{new_id('x')[2:7]}",
                   reason=failure)

    def cancel(self, service: ServiceRec, deploy: DeployRec) -> None:
        with self.lock:
            if deploy.status == "queued":
                self.finish(service, deploy, "canceled")
            elif deploy.status in IN_PROGRESS:
                self.runtime.cancel(self, service, deploy)
                self.finish(service, deploy, "canceled")

    def rollback(self, service: ServiceRec, target: DeployRec) -> tuple[DeployRec, bool]:
        """A new deploy with ``trigger: rollback`` reusing ``target``'s build; ``autoDeploy`` is left alone."""
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

    def job_status(self, service: ServiceRec, job: JobRec, status: str, *, at: float | None = None) -> None:
        """Move a job to ``status``; a terminal status records ``finishedAt`` and a job_run_ended event."""
        with self.lock:
            if job.status in ("succeeded", "failed", "canceled"):
                return
            now = self.clock() if at is None else at
            job.status = status
            if status == "running":
                job.started_at = now
            elif status in ("succeeded", "failed", "canceled"):
                job.started_at = job.started_at or now
                job.finished_at = now
                self.event(service, "job_run_ended", at=now, jobId=job.id, status=status)

    def cancel_job(self, service: ServiceRec, job: JobRec) -> None:
        with self.lock:
            if job.status in ("pending", "running"):
                self.runtime.cancel_job(self, service, job)
                self.job_status(service, job, "canceled")

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
        """Restore saved services (matched by name) and restart what was live; in-flight deploys become canceled."""
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
                service.id, service.auto_deploy = saved["id"], saved["auto_deploy"]
                service.created_at = saved["created_at"]
                service.url = service.url or saved.get("url", "")
                known = set(DeployRec.__dataclass_fields__)
                service.deploys = [DeployRec(**{k: v for k, v in d.items() if k in known}) for d in saved["deploys"]]
                service.events = saved.get("events", [])
                for deploy in service.deploys:
                    if deploy.status in IN_PROGRESS or deploy.status == "queued":
                        deploy.status = "canceled"
                self.services[service.id] = service
                self.runtime.restore(self, service)
