"""Real deploys on this machine: check out a commit, build, pre-deploy, start, health-check, switch traffic.

Each service gets a stable URL on 127.0.0.1 (a ServiceProxy). A deploy runs in a background thread: ``git archive``
of the commit into a build directory, ``buildCommand`` (failure -> build_failed), ``preDeployCommand`` when present
(failure -> pre_deploy_failed; the old instance keeps serving), then the new instance is started with ``PORT`` set
and must answer ``healthCheckPath`` with 2xx/3xx within the grace period (else update_failed and it is killed); only
then does the proxy switch to it; the old instance stops once drained. Rollbacks start the target deploy's existing
build directory without rebuilding.

A crashed live instance is restarted with backoff (``supervisor.py``); a cron job's deploy starts no run (``cron.py``).

Output is recorded as Render exposes it (``telemetry.py``): build and
pre-deploy output as ``build`` logs of the service, an instance's stdout and
stderr as ``app`` logs with its instance id (``srv-...-xxxxx``), a job's
output as ``app`` logs of the job; every request through the stable URL as a
request record and a ``request`` log (``proxy.py``).
"""

from __future__ import annotations

import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import structlog

from deploypipe.core.processes import free_port, stop_group
from deploypipe.emulator.buildtime import take_at_least
from deploypipe.emulator.health import probe, settled
from deploypipe.emulator.ids import new_id
from deploypipe.emulator.lifecycle import Lifecycle
from deploypipe.emulator.proclogs import LineSink, run_logged, start_logged
from deploypipe.emulator.procs import GeneratedValues, checkout, prune_builds, resolve_commit, service_env
from deploypipe.emulator.proxy import Served, ServiceProxy
from deploypipe.emulator.records import FAILED_STATUS, DeployRec, JobRec, ServiceRec
from deploypipe.emulator.supervisor import Instance as _Instance
from deploypipe.emulator.supervisor import supervise
from deploypipe.emulator.telemetry import RequestRec

__all__ = ["ProcessRuntime"]

log = structlog.get_logger("deploypipe.emulator")


def _build_lines(emulator: Lifecycle, service: ServiceRec) -> LineSink:
    return lambda line: emulator.telemetry.log(service.id, line, type="build")


@dataclass
class ProcessRuntime:
    repo: Path
    data_dir: Path
    health_interval_s: float = 0.25
    health_grace_s: float = 30.0
    keep_builds: int = 10  # builds kept per service; older ones expire and cannot be rolled back to
    worker_settle_s: float = 1.0  # a worker still running after this long is live
    drain_s: float = 5.0  # at most this long the replaced instance finishes answers in flight (Render: 60 s)
    restart_backoff_s: float = 1.0  # a crashed live instance is started again after this, doubling up to 30 s
    build_s: dict[str, float] = field(default_factory=dict)  # service name -> least seconds its build takes
    proxies: dict[str, ServiceProxy] = field(default_factory=dict)
    instances: dict[str, _Instance] = field(default_factory=dict)
    generated: GeneratedValues | None = None
    _cancelled: set[str] = field(default_factory=set)
    _running: dict[str, subprocess.Popen] = field(default_factory=dict)  # deploy or job id -> its command
    _threads: list[threading.Thread] = field(default_factory=list)
    _draining: list[subprocess.Popen] = field(default_factory=list)
    _closing: bool = False
    closed: threading.Event = field(default_factory=threading.Event)

    # -- wiring --------------------------------------------------------------------------
    def proxy_for(self, service: ServiceRec, emulator: Lifecycle, port: int = 0) -> ServiceProxy:
        """The service's stable URL; its requests are recorded in ``emulator.telemetry``."""
        if service.name not in self.proxies:
            def record(served: Served) -> None:
                seen = served.exchange
                emulator.telemetry.request(RequestRec(
                    at=seen.started, resource=service.id, method=seen.method, path=seen.path, status=seen.status,
                    latency_ms=seen.latency_ms, host=seen.host, instance=served.instance, deploy=served.deploy))

            self.proxies[service.name] = ServiceProxy(port, on_request=record)
        return self.proxies[service.name]

    def _run(self, command: str, cwd: Path, env: dict[str, str], log_path: Path, owner: str, sink: LineSink) -> int:
        """Run ``command`` to its end, its output lines to ``log_path`` and ``sink``; its exit status."""
        try:
            return run_logged(command, cwd=cwd, env=env, log_path=log_path, sink=sink,
                              started=lambda proc: self._running.__setitem__(owner, proc))
        finally:
            self._running.pop(owner, None)

    def env(self, emulator: Lifecycle, service: ServiceRec, commit: str | None, port: int = 0) -> dict[str, str]:
        if self.generated is None:
            self.generated = GeneratedValues(self.data_dir / "generated-values.json")
        return service_env(emulator, service, commit, port, self.generated)

    def _log(self, deploy: DeployRec) -> Path:
        path = self.data_dir / "logs" / f"{deploy.id}.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def build_dir(self, build_id: str, service: ServiceRec) -> Path:
        return self.data_dir / "builds" / build_id / (service.spec.rootDir or "")

    # -- phases --------------------------------------------------------------------------
    def _healthy(self, deploy_id: str, instance: _Instance, service: ServiceRec) -> tuple[bool, dict[str, Any]]:
        """Health-check the new instance (see ``health.probe``); a cancel or close stops the probing."""
        if service.spec.type in ("worker", "cron"):
            return settled(instance.proc, self.worker_settle_s)
        return probe(instance.proc, instance.port, service.spec.healthCheckPath if service.spec.type == "web" else None,
                     grace_s=self.health_grace_s, interval_s=self.health_interval_s,
                     stopped=lambda: self._closing or deploy_id in self._cancelled)

    def _start_instance(self, emulator: Lifecycle, service: ServiceRec, deploy: DeployRec, cwd: Path,
                        log_path: Path) -> _Instance:
        port = free_port()
        env = self.env(emulator, service, deploy.commit_id, port)
        instance_id = f"{service.id}-{new_id('x')[2:7]}"
        emulator.telemetry.log(service.id, f"==> Running '{service.spec.startCommand}'", type="build")

        def app(line: str) -> None:
            emulator.telemetry.log(service.id, line, type="app", instance=instance_id)

        proc = start_logged(service.spec.startCommand, cwd=cwd, env=env, log_path=log_path, sink=app)
        return _Instance(instance_id, deploy.id, port, proc)

    def _build(self, emulator: Lifecycle, service: ServiceRec, deploy: DeployRec, log_path: Path) -> bool:
        deploy.build_id, began = f"bld-{deploy.id[4:]}", time.monotonic()
        emulator.phase_started(service, deploy, "build")
        env = self.env(emulator, service, deploy.commit_id, 0)
        lines = _build_lines(emulator, service)
        lines(f"==> Checking out commit {deploy.commit_id or 'HEAD'} in branch {service.spec.branch}")
        ok = checkout(self.repo, deploy.commit_id or "HEAD", self.data_dir / "builds" / deploy.build_id, log_path)
        if ok:
            lines(f"==> Running build command '{service.spec.buildCommand}'...")
        ok = ok and self._run(service.spec.buildCommand, self.build_dir(deploy.build_id, service), env, log_path,
                              deploy.id, lines) == 0
        ok = ok and deploy.fail_at != "build"
        take_at_least(self.build_s.get(service.name, 0.0), began, cancelled=lambda: deploy.id in self._cancelled,
                      closed=self.closed)
        if deploy.id not in self._cancelled:
            lines("==> Build successful 🎉" if ok else "==> Build failed 😞")
        if deploy.id in self._cancelled:
            emulator.phase_ended(service, deploy, "build", "canceled")
            return False
        reason = {} if ok else {"buildFailed": {"id": deploy.build_id}}
        emulator.phase_ended(service, deploy, "build", "succeeded" if ok else "failed", reason=reason)
        if not ok:
            emulator.finish(service, deploy, FAILED_STATUS["build"], reason=reason)
        return ok

    def _pre_deploy(self, emulator: Lifecycle, service: ServiceRec, deploy: DeployRec, log_path: Path) -> bool:
        emulator.phase_started(service, deploy, "pre_deploy")
        env = self.env(emulator, service, deploy.commit_id, 0)
        lines = _build_lines(emulator, service)
        lines(f"==> Running pre-deploy command '{service.spec.preDeployCommand}'...")
        code = 1 if deploy.fail_at == "pre_deploy" else self._run(
            service.spec.preDeployCommand or "true", self.build_dir(deploy.build_id or "", service), env, log_path,
            deploy.id, lines)
        if deploy.id in self._cancelled:
            emulator.phase_ended(service, deploy, "pre_deploy", "canceled")
            return False
        reason = {} if code == 0 else {"failure": {"evicted": False, "nonZeroExit": code}}
        emulator.phase_ended(service, deploy, "pre_deploy", "succeeded" if code == 0 else "failed", reason=reason)
        if code != 0:  # pre_deploy_ended tells why; deploy_ended has no instance failure to report
            emulator.finish(service, deploy, FAILED_STATUS["pre_deploy"], reason={})
        return code == 0

    def _deploy(self, emulator: Lifecycle, service: ServiceRec, deploy: DeployRec) -> None:
        log_path = self._log(deploy)
        try:
            if deploy.trigger != "rollback" or not deploy.build_id:
                if not self._build(emulator, service, deploy, log_path):
                    return
            if service.spec.preDeployCommand and not self._pre_deploy(emulator, service, deploy, log_path):
                return
            if deploy.id in self._cancelled:
                return
            emulator.phase_started(service, deploy, "update")
            if service.spec.type == "cron":  # live once built, as on Render: later runs use this build
                emulator.finish(service, deploy, "live")
                return prune_builds(self.data_dir / "builds", service, self.keep_builds)
            instance = self._start_instance(emulator, service, deploy, self.build_dir(deploy.build_id or "", service),
                                            log_path)
            healthy, reason = self._healthy(deploy.id, instance, service)
            if deploy.fail_at == "update":
                healthy, reason = False, {"failure": {"evicted": False, "unhealthy": "fault injected: fail_deploy"}}
            if not healthy or deploy.id in self._cancelled:
                stop_group(instance.proc)
                if deploy.id not in self._cancelled and not self._closing:
                    emulator.server_failed(service, reason, instance=instance.id)
                    emulator.finish(service, deploy, FAILED_STATUS["update"], reason=reason)
                return
            self._go_live(emulator, service, instance)
            emulator.finish(service, deploy, "live")
            prune_builds(self.data_dir / "builds", service, self.keep_builds)
        except Exception as exc:  # noqa: BLE001 -- the emulator must never wedge a deploy in progress
            log.error("emulator_deploy_crashed", deploy_id=deploy.id, error=f"{type(exc).__name__}: {exc}")
            emulator.finish(service, deploy, FAILED_STATUS["update"],
                            reason={"failure": {"evicted": False, "unhealthy": f"local Render error: {exc}"}})

    def _go_live(self, emulator: Lifecycle, service: ServiceRec, instance: _Instance) -> None:
        proxy = self.proxy_for(service, emulator)
        old = self.instances.get(service.name)
        proxy.switch(instance.port, instance=instance.id, deploy=instance.deploy_id)
        self.instances[service.name] = instance
        if old is not None:  # stop it once the requests already sent to it are answered
            self._draining.append(old.proc)

            def drain_then_stop() -> None:
                proxy.wait_drained(old.port, self.drain_s)
                stop_group(old.proc)

            threading.Thread(target=drain_then_stop, name=f"drain-{old.deploy_id}", daemon=True).start()
        threading.Thread(target=supervise, args=(self, emulator, service, instance), daemon=True).start()

    def restart(self, emulator: Lifecycle, service: ServiceRec, deploy: DeployRec, old: _Instance) -> _Instance:
        """Start ``deploy``'s build again in place of the crashed ``old`` instance; the stable URL follows it."""
        new = self._start_instance(emulator, service, deploy, self.build_dir(deploy.build_id or "", service),
                                   self._log(deploy))
        if service.spec.type not in ("worker", "cron"):
            self.proxy_for(service, emulator).switch(new.port, instance=new.id, deploy=new.deploy_id)
        self.instances[service.name] = new
        return new

    def has_build(self, service: ServiceRec, deploy: DeployRec) -> bool:
        """Whether ``deploy``'s build is still kept (a rollback needs it)."""
        return bool(deploy.build_id) and self.build_dir(deploy.build_id or "", service).exists()

    def resolve_commit(self, service: ServiceRec, commit: str | None) -> tuple[str, str] | None:
        """(sha, subject) of ``commit`` (default: the head of the service's branch) in the local repository."""
        return resolve_commit(self.repo, commit, service.spec.branch)

    # -- Runtime protocol --------------------------------------------------------------
    def start(self, emulator: Lifecycle, service: ServiceRec, deploy: DeployRec) -> None:
        self.proxy_for(service, emulator)
        thread = threading.Thread(target=self._deploy, args=(emulator, service, deploy), name=f"deploy-{deploy.id}",
                                  daemon=True)
        self._threads.append(thread)
        thread.start()

    def advance(self, emulator: Lifecycle, service: ServiceRec) -> None:
        return None

    def cancel(self, emulator: Lifecycle, service: ServiceRec, deploy: DeployRec) -> None:
        self._cancelled.add(deploy.id)
        proc = self._running.get(deploy.id)
        if proc is not None:
            stop_group(proc, grace_s=2.0)

    def run_job(self, emulator: Lifecycle, service: ServiceRec, job: JobRec) -> None:
        """Run the job's command in the live deploy's build directory with the service's environment."""
        live = service.live()
        if live is None or not live.build_id or not self.build_dir(live.build_id, service).exists():
            log.warning("emulator_job_without_build", service=service.name, job_id=job.id)
            emulator.job_status(service, job, "failed")
            return

        def work() -> None:
            emulator.job_status(service, job, "running")
            log_path = self.data_dir / "logs" / f"{job.id}.log"
            log_path.parent.mkdir(parents=True, exist_ok=True)
            code = self._run(job.start_command, self.build_dir(live.build_id or "", service),
                             self.env(emulator, service, live.commit_id, 0), log_path, job.id,
                             lambda line: emulator.telemetry.log(job.id, line, type="app"))
            emulator.job_status(service, job, "succeeded" if code == 0 else "failed")

        thread = threading.Thread(target=work, name=f"job-{job.id}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def cancel_job(self, emulator: Lifecycle, service: ServiceRec, job: JobRec) -> None:
        proc = self._running.get(job.id)
        if proc is not None:
            stop_group(proc, grace_s=2.0)

    def restore(self, emulator: Lifecycle, service: ServiceRec) -> None:
        """After a restart: serve the saved live deploy again from its build directory."""
        live = service.live() if service.spec.type != "cron" else None  # a cron job serves nothing between runs
        port = urlsplit(service.url).port or 0 if service.url else 0
        proxy = self.proxy_for(service, emulator, port)
        service.url = proxy.url
        if live is None or not live.build_id or not self.build_dir(live.build_id, service).exists():
            return
        instance = self._start_instance(emulator, service, live, self.build_dir(live.build_id, service),
                                        self._log(live))
        healthy, reason = self._healthy(live.id, instance, service)
        if healthy:
            self._go_live(emulator, service, instance)
        else:
            stop_group(instance.proc)
            emulator.server_failed(service, reason, instance=instance.id)

    def close(self) -> None:
        """Stop every running command, instance and proxy, and wait for the deploy threads."""
        self._closing = True
        self.closed.set()
        for proc in list(self._running.values()):
            stop_group(proc, grace_s=2.0)
        for proc in [*self._draining, *(instance.proc for instance in self.instances.values())]:
            stop_group(proc)
        for proxy in self.proxies.values():
            proxy.close()
        for thread in self._threads:
            thread.join(10)

