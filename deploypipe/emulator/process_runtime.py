"""Real deploys on this machine: check out a commit, build, pre-deploy, start, health-check, switch traffic.

Each service gets a stable URL on 127.0.0.1 (a ServiceProxy). A deploy runs in
a background thread: ``git archive`` of the commit into a build directory,
``buildCommand`` (failure -> build_failed), ``preDeployCommand`` when present
(failure -> pre_deploy_failed; the old instance keeps serving), then the new
instance is started with ``PORT`` set and must answer ``healthCheckPath`` with
2xx/3xx within the grace period (else update_failed and it is killed); only
then does the proxy switch to it and the old instance stop. Rollbacks start
the target deploy's existing build directory without rebuilding.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
import structlog

from deploypipe.emulator.proxy import ServiceProxy
from deploypipe.emulator.state import FAILED_STATUS

if TYPE_CHECKING:  # pragma: no cover
    from deploypipe.emulator.state import DeployRec, Emulator, JobRec, ServiceRec

__all__ = ["ProcessRuntime"]

log = structlog.get_logger("deploypipe.emulator")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop(proc: subprocess.Popen | None, grace_s: float = 5.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


@dataclass
class _Instance:
    deploy_id: str
    port: int
    proc: subprocess.Popen


@dataclass
class ProcessRuntime:
    repo: Path
    data_dir: Path
    health_interval_s: float = 0.25
    health_grace_s: float = 30.0
    proxies: dict[str, ServiceProxy] = field(default_factory=dict)
    instances: dict[str, _Instance] = field(default_factory=dict)
    generated: dict[str, str] = field(default_factory=dict)
    _cancelled: set[str] = field(default_factory=set)
    _threads: list[threading.Thread] = field(default_factory=list)
    _closing: bool = False

    # -- wiring --------------------------------------------------------------------------
    def proxy_for(self, service: "ServiceRec", port: int = 0) -> ServiceProxy:
        if service.name not in self.proxies:
            self.proxies[service.name] = ServiceProxy(port)
        return self.proxies[service.name]

    def _run(self, command: str, cwd: Path, env: dict[str, str], log_path: Path) -> int:
        with open(log_path, "ab") as out:
            out.write(f"$ {command}\n".encode())
            out.flush()
            return subprocess.run(["bash", "-c", command], cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL).returncode

    def _env(self, emulator: "Emulator", service: "ServiceRec", commit: str | None, port: int) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "VIRTUAL_ENV", "PYTHONPATH", "TMPDIR")}
        # the runtime's interpreter first on PATH, as Render's python runtime has its own on PATH
        env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "/usr/bin:/bin")
        env.update({"PORT": str(port), "HOST": "127.0.0.1", "RENDER": "true", "RENDER_GIT_COMMIT": commit or "",
                    "RENDER_SERVICE_NAME": service.name, "RENDER_SERVICE_ID": service.id,
                    "RENDER_EXTERNAL_URL": service.url, "PYTHONUNBUFFERED": "1"})
        databases = {p.name: p for p in emulator.postgres.values()}
        for var in service.spec.envVars:
            if var.fromDatabase:
                db = databases.get(var.fromDatabase.get("name", ""))
                if db is None:
                    continue
                parts = urlsplit(db.url)
                env[var.key] = {"connectionString": db.url, "host": parts.hostname or "", "port": str(parts.port or 5432),
                                "user": db.user, "password": db.password, "database": db.database}.get(
                    var.fromDatabase.get("property", "connectionString"), db.url)
            elif var.generateValue:
                env[var.key] = self.generated.setdefault(f"{service.name}:{var.key}", secrets.token_urlsafe(32))
            elif var.value is not None:
                env[var.key] = str(var.value)
        return env

    def _log(self, deploy: "DeployRec") -> Path:
        path = self.data_dir / "logs" / f"{deploy.id}.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def build_dir(self, build_id: str, service: "ServiceRec") -> Path:
        return self.data_dir / "builds" / build_id / (service.spec.rootDir or "")

    # -- phases --------------------------------------------------------------------------
    def _checkout(self, commit: str, target: Path, log_path: Path) -> bool:
        target.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(self.repo), "archive", "--format=tar", commit], capture_output=True)
        if archive.returncode != 0:
            log_path.open("ab").write(archive.stderr)
            return False
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
        return True

    def _healthy(self, instance: _Instance, path: str | None, deadline: float) -> tuple[bool, dict[str, Any]]:
        while time.monotonic() < deadline and not self._closing:
            code = instance.proc.poll()
            if code is not None:
                return False, {"failure": {"evicted": False, "nonZeroExit": code}}
            try:
                if path:
                    response = httpx.get(f"http://127.0.0.1:{instance.port}{path}", timeout=5.0)
                    if response.status_code < 400:
                        return True, {}
                else:
                    socket.create_connection(("127.0.0.1", instance.port), timeout=1).close()
                    return True, {}
            except (httpx.HTTPError, OSError):
                pass
            time.sleep(self.health_interval_s)
        return False, {"failure": {"evicted": False, "timedOutSeconds": int(self.health_grace_s),
                                   "unhealthy": f"{path or 'port'} did not answer 2xx/3xx"}}

    def _start_instance(self, emulator: "Emulator", service: "ServiceRec", deploy: "DeployRec", cwd: Path,
                        log_path: Path) -> _Instance:
        port = _free_port()
        env = self._env(emulator, service, deploy.commit_id, port)
        out = open(log_path, "ab")
        proc = subprocess.Popen(["bash", "-c", service.spec.startCommand], cwd=cwd, env=env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        return _Instance(deploy.id, port, proc)

    def _deploy(self, emulator: "Emulator", service: "ServiceRec", deploy: "DeployRec") -> None:
        log_path = self._log(deploy)
        spec = service.spec
        try:
            if deploy.trigger != "rollback" or not deploy.build_id:
                deploy.build_id = f"bld-{deploy.id[4:]}"
                emulator.set_status(service, deploy, "build_in_progress")
                emulator.event(service, "build_started", buildId=deploy.build_id)
                root = self.data_dir / "builds" / deploy.build_id
                env = self._env(emulator, service, deploy.commit_id, 0)
                ok = self._checkout(deploy.commit_id or "HEAD", root, log_path) and \
                    self._run(spec.buildCommand, self.build_dir(deploy.build_id, service), env, log_path) == 0
                emulator.event(service, "build_ended", buildId=deploy.build_id, buildStatus="succeeded" if ok else "failed")
                if deploy.id in self._cancelled:
                    return
                if not ok or deploy.fail_at == "build":
                    return emulator.finish(service, deploy, FAILED_STATUS["build"], reason={"buildFailed": {"id": deploy.build_id}})
            cwd = self.build_dir(deploy.build_id, service)
            if spec.preDeployCommand:
                emulator.set_status(service, deploy, "pre_deploy_in_progress")
                emulator.event(service, "pre_deploy_started", deployId=deploy.id)
                code = 1 if deploy.fail_at == "pre_deploy" else self._run(
                    spec.preDeployCommand, cwd, self._env(emulator, service, deploy.commit_id, 0), log_path)
                status = "succeeded" if code == 0 else "failed"
                emulator.event(service, "pre_deploy_ended", deployCommandExecutionId=deploy.id, deployId=deploy.id,
                               preDeployStatus=status, reason={} if code == 0 else {"failure": {"evicted": False, "nonZeroExit": code}})
                if code != 0:
                    return emulator.finish(service, deploy, FAILED_STATUS["pre_deploy"], reason={})
            if deploy.id in self._cancelled:
                return
            emulator.set_status(service, deploy, "update_in_progress")
            instance = self._start_instance(emulator, service, deploy, cwd, log_path)
            healthy, reason = self._healthy(instance, spec.healthCheckPath, time.monotonic() + self.health_grace_s)
            if deploy.fail_at == "update":
                healthy, reason = False, {"failure": {"evicted": False, "unhealthy": "fault injected"}}
            if not healthy or deploy.id in self._cancelled:
                _stop(instance.proc)
                if deploy.id not in self._cancelled:
                    emulator.event(service, "server_failed", deployId=deploy.id, reason=reason)
                    emulator.finish(service, deploy, FAILED_STATUS["update"], reason=reason)
                return
            self._go_live(emulator, service, instance)
            emulator.finish(service, deploy, "live")
            emulator.event(service, "server_available", deployId=deploy.id)
        except Exception as exc:  # the emulator must never wedge a deploy in progress
            log.error("emulator_deploy_crashed", deploy_id=deploy.id, error=str(exc))
            emulator.finish(service, deploy, FAILED_STATUS["update"], reason={"failure": {"evicted": False, "unhealthy": str(exc)}})

    def _go_live(self, emulator: "Emulator", service: "ServiceRec", instance: _Instance) -> None:
        proxy = self.proxy_for(service)
        old = self.instances.get(service.name)
        proxy.backend = instance.port
        self.instances[service.name] = instance
        if old is not None:
            _stop(old.proc)
        threading.Thread(target=self._watch, args=(emulator, service, instance), daemon=True).start()

    def _watch(self, emulator: "Emulator", service: "ServiceRec", instance: _Instance) -> None:
        code = instance.proc.wait()
        if self.instances.get(service.name) is instance and not self._closing:
            emulator.event(service, "server_failed", deployId=instance.deploy_id,
                           reason={"failure": {"evicted": False, "nonZeroExit": code}})

    def resolve_commit(self, service: "ServiceRec", commit: str | None) -> tuple[str, str] | None:
        """(sha, subject) of ``commit`` (default: the head of the service's branch) in the local repository."""
        ref = commit or service.spec.branch or "HEAD"
        result = subprocess.run(["git", "-C", str(self.repo), "log", "-1", "--format=%H%n%s", f"{ref}^{{commit}}", "--"],
                                capture_output=True, text=True)
        if result.returncode != 0 and commit is None:
            result = subprocess.run(["git", "-C", str(self.repo), "log", "-1", "--format=%H%n%s", "HEAD"],
                                    capture_output=True, text=True)
        if result.returncode != 0:
            return None
        sha, _, subject = result.stdout.strip().partition("\n")
        return sha, subject

    def export_postgres(self, db: Any) -> str:
        """pg_dump a Blueprint database into the data dir, as Render's export does; returns a file:// URL."""
        from deploypipe.embedded_pg import pg_bin

        target = self.data_dir / "exports" / f"{db.id}-{int(time.time())}.dump"
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            subprocess.run([pg_bin("pg_dump"), "-Fc", "-d", db.url], stdout=out, stderr=subprocess.DEVNULL, check=False)
        return target.resolve().as_uri()

    # -- Runtime protocol --------------------------------------------------------------
    def start(self, emulator: "Emulator", service: "ServiceRec", deploy: "DeployRec") -> None:
        self.proxy_for(service)
        thread = threading.Thread(target=self._deploy, args=(emulator, service, deploy), name=f"deploy-{deploy.id}",
                                  daemon=True)
        self._threads.append(thread)
        thread.start()

    def advance(self, emulator: "Emulator", service: "ServiceRec") -> None:
        return None

    def cancel(self, emulator: "Emulator", service: "ServiceRec", deploy: "DeployRec") -> None:
        self._cancelled.add(deploy.id)

    def run_job(self, emulator: "Emulator", service: "ServiceRec", job: "JobRec") -> None:
        def work() -> None:
            live = service.live()
            job.status, job.started_at = "running", emulator.clock()
            if live is None or not live.build_id:
                job.status, job.finished_at = "failed", emulator.clock()
                return
            log_path = self.data_dir / "logs" / f"{job.id}.log"
            log_path.parent.mkdir(parents=True, exist_ok=True)
            code = self._run(job.start_command, self.build_dir(live.build_id, service),
                             self._env(emulator, service, live.commit_id, 0), log_path)
            job.status, job.finished_at = ("succeeded" if code == 0 else "failed"), emulator.clock()

        threading.Thread(target=work, daemon=True).start()

    def restore(self, emulator: "Emulator", service: "ServiceRec") -> None:
        """After a restart: serve the saved live deploy again from its build directory."""
        live = service.live()
        port = urlsplit(service.url).port or 0 if service.url else 0
        proxy = self.proxy_for(service, port)
        service.url = proxy.url
        if live is None or not live.build_id or not self.build_dir(live.build_id, service).exists():
            return
        instance = self._start_instance(emulator, service, live, self.build_dir(live.build_id, service), self._log(live))
        healthy, reason = self._healthy(instance, service.spec.healthCheckPath, time.monotonic() + self.health_grace_s)
        if healthy:
            self._go_live(emulator, service, instance)
        else:
            _stop(instance.proc)
            emulator.event(service, "server_failed", deployId=live.id, reason=reason)

    def close(self) -> None:
        self._closing = True
        for instance in list(self.instances.values()):
            _stop(instance.proc)
        for proxy in self.proxies.values():
            proxy.close()

