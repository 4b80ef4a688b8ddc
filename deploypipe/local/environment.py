"""Start (or reuse) the local "production": embedded PostgreSQL + the local Render on loopback.

Layout of ``.deploypipe/local/``:

    pg/            embedded PostgreSQL data directory (the production database)
    repo/          the git repository the local Render builds (render.yaml + app, committed)
    render/        the local Render's data: builds, instance logs, its state, server.json
    secrets.json   generated API key and database password (mode 0600)

The run only sees environment variables (``RENDER_API_URL``, ``RENDER_API_KEY``,
``DATABASE_URL``, ``DEPLOYPIPE_LOCAL_REPO``): the pipeline code is the code
that talks to Render.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

import httpx
import structlog
from pydantic import ValidationError

from deploypipe.core.processes import free_port, wait_ready
from deploypipe.emulator.blueprint import DatabaseDef, load_blueprint
from deploypipe.errors import StageErrored, UsageError
from deploypipe.local.repo import LocalRepo
from deploypipe.local.traffic import TrafficGenerator
from deploypipe.render.client import RenderClient
from deploypipe.spec.model import LocalSpec, TrafficSpec

__all__ = ["LocalEnvironment", "stop_local"]

log = structlog.get_logger("deploypipe.local")


def _alive(pid: int) -> bool:
    try:  # our own child that exited is a zombie until reaped: reap it, then it is gone
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _load_secrets(local_dir: Path) -> dict[str, str]:
    path = local_dir / "secrets.json"
    if path.exists():
        return json.loads(path.read_text())
    values = {"api_key": "rnd_local_" + secrets.token_hex(12), "db_password": secrets.token_urlsafe(18)}
    local_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(values, handle)
    return values


def stop_local(local_dir: Path) -> None:
    """Stop a local Render left running (``--keep-running``) and the embedded PostgreSQL."""
    server = local_dir / "render" / "server.json"
    if server.exists():
        pid = json.loads(server.read_text()).get("pid")
        if pid and _alive(pid):
            os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                if not _alive(pid):
                    break
                time.sleep(0.1)
        server.unlink(missing_ok=True)
    pg_dir = local_dir / "pg"
    if (pg_dir / "postmaster.pid").exists():
        from deploypipe.core.embedded_pg import start_embedded

        start_embedded(pg_dir, keep_running=False).stop()  # attach as the last handle, then stop it


@dataclass
class LocalEnvironment:
    project_dir: Path
    local_dir: Path
    blueprint: str = "render.yaml"
    app_dirs: tuple[str, ...] = ()
    database: str | None = None
    keep_running: bool = False
    traffic: TrafficSpec | None = None
    _started: list[Any] = field(default_factory=list)

    @classmethod
    def for_invocation(cls, inv: Any, raw: Mapping[str, Any]) -> LocalEnvironment:
        try:
            spec = LocalSpec.model_validate(raw)
        except ValidationError as exc:  # reported precisely by the pipeline loader; here just refuse
            raise UsageError(f"local: {exc.errors()[0]['msg']}", where=str(inv.pipeline_path())) from None
        traffic = spec.traffic if inv.env.get("DEPLOYPIPE_LOCAL_TRAFFIC", "on") != "off" else None
        return cls(project_dir=inv.project_dir, local_dir=inv.state_dir / "local", blueprint=spec.blueprint,
                   app_dirs=tuple(spec.app_dirs), database=spec.database, keep_running=inv.keep_running,
                   traffic=traffic)

    # -- pieces ------------------------------------------------------------------
    def production_database(self) -> DatabaseDef:
        """The Blueprint database that plays production: ``local.database``, else the Blueprint's only one."""
        path = self.project_dir / self.blueprint
        databases = load_blueprint(path).databases
        chosen = [d for d in databases if self.database in (None, d.name)]
        if len(chosen) != 1:
            names = ", ".join(d.name for d in databases) or "none"
            raise UsageError(f"local.database: {self.database or '(not set)'} does not pick one database of "
                             f"{self.blueprint} (its databases: {names})", where=str(path),
                             hint="set local.database to the Blueprint database that plays production")
        return chosen[0]

    def left_running(self) -> bool:
        """Whether a local default left running (``--keep-running``) is up: its local Render's process is alive."""
        server = self.local_dir / "render" / "server.json"
        try:
            pid = json.loads(server.read_text()).get("pid")
        except (OSError, ValueError):
            return False
        return bool(pid) and _alive(pid)

    def start_database(self, database: DatabaseDef, password: str, *, keep: bool = False) -> str:
        from deploypipe.core.embedded_pg import start_embedded

        pg = start_embedded(self.local_dir / "pg", keep_running=self.keep_running or keep)
        self._started.append(pg)
        name = database.databaseName or database.name.replace("-", "_")
        return pg.create_database(name, owner=database.user or name, password=password)

    def sync_repo(self) -> LocalRepo:
        if not (self.project_dir / self.blueprint).exists():
            raise UsageError(f"{self.blueprint} not found in {self.project_dir}",
                             hint="run from the repository root or set local.blueprint")
        repo = LocalRepo(self.local_dir / "repo")
        head = repo.sync_from(self.project_dir, [self.blueprint, *self.app_dirs])
        log.info("local_repo_synced", commit=head[:12])
        return repo

    def start_render(self, api_key: str, repo: LocalRepo, database: str, database_url: str) -> str:
        """Start the local Render as a child process on a free loopback port (or reuse a kept-running one)."""
        data = self.local_dir / "render"
        data.mkdir(parents=True, exist_ok=True)
        server = data / "server.json"
        if server.exists():
            info = json.loads(server.read_text())
            if info.get("pid") and _alive(info["pid"]):
                log.info("local_render_reused", url=info["url"], pid=info["pid"])
                return info["url"]
        port = free_port()
        env = {**os.environ, "DEPLOYPIPE_EMULATOR_API_KEY": api_key}
        command = [sys.executable, "-m", "deploypipe.cli", "emulator", "--port", str(port),
                   "--blueprint", str(repo.path / self.blueprint), "--repo", str(repo.path),
                   "--data-dir", str(data), "--database", f"{database}={database_url}"]
        log_file = open(data / "emulator.log", "ab")
        proc = subprocess.Popen(command, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        url = f"http://127.0.0.1:{port}/v1"

        def answers() -> bool:
            try:
                httpx.get(url + "/services", headers={"Authorization": f"Bearer {api_key}"}, timeout=1,
                          trust_env=False)
            except httpx.HTTPError:
                return False
            return True

        state = wait_ready(proc, answers, timeout_s=30)
        if state == "exited":
            raise StageErrored(f"the local Render exited with {proc.returncode}", where=str(data / "emulator.log"))
        if state == "timeout":
            proc.kill()
            raise StageErrored("the local Render did not answer within 30 s", where=str(data / "emulator.log"))
        server.write_text(json.dumps({"pid": proc.pid, "url": url}))
        self._started.append(proc)
        log.info("local_render_started", url=url, pid=proc.pid)
        return url

    def start_traffic(self, api_url: str, api_key: str) -> TrafficGenerator | None:
        """Start the pipeline's local traffic (if any) at the service's stable URL on the local Render."""
        if self.traffic is None:
            return None
        with RenderClient.from_env({"RENDER_API_URL": api_url, "RENDER_API_KEY": api_key}) as client:
            service = client.find_service(self.traffic.service)
        if not service.url:
            raise UsageError(f"local.traffic.service: {self.traffic.service} has no URL on the local Render",
                             hint="send traffic to a web service of the Blueprint")
        return TrafficGenerator(service.url, self.traffic).start()

    def planned(self) -> dict[str, str]:
        """What :meth:`running` would provide, as descriptions (for ``plan``): nothing is started or read."""
        database = self.production_database().name
        return {"RENDER_API_URL": "http://127.0.0.1:0/v1", "RENDER_API_KEY": "rnd_local_default",
                "DATABASE_URL": f"postgresql://{database}@localhost/{database}",
                "DEPLOYPIPE_LOCAL_REPO": str(self.local_dir / "repo"), "DEPLOYPIPE_LOCAL_DIR": str(self.local_dir)}

    @contextlib.contextmanager
    def running(self) -> Iterator[dict[str, str]]:
        """The local default's variables for the block; stops at the end only what it started: a local default
        left running (``--keep-running``) is reused and keeps running."""
        values = _load_secrets(self.local_dir)
        traffic: TrafficGenerator | None = None
        reused = self.left_running()
        try:
            database = self.production_database()
            database_url = self.start_database(database, values["db_password"], keep=reused)
            repo = self.sync_repo()
            url = self.start_render(values["api_key"], repo, database.name, database_url)
            traffic = self.start_traffic(url, values["api_key"])
            yield {"RENDER_API_URL": url, "RENDER_API_KEY": values["api_key"], "DATABASE_URL": database_url,
                   "DEPLOYPIPE_LOCAL_REPO": str(repo.path), "DEPLOYPIPE_LOCAL_DIR": str(self.local_dir)}
        finally:
            if traffic is not None:
                traffic.stop()
            if reused:
                log.info("local_left_running", hint="stop it with `invoke clean`")
            elif not self.keep_running:
                stop_local(self.local_dir)
            else:
                log.info("local_kept_running", hint="stop it with `invoke clean`")
