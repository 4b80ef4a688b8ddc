"""The safety tests' world: a local Render on loopback with simulated deploys, a health endpoint per service that
reports the live commit, the real CLI as a subprocess, and helpers to read a run's journal.

Imported by the test modules (``from harness import ...``); fixtures live in conftest.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import httpx
from helpers import LoopbackApp
from helpers import invocation as base_invocation

from deploypipe.emulator import Emulator
from deploypipe.emulator.blueprint import ServiceDef
from deploypipe.emulator.runtime import SimulatedRuntime
from deploypipe.emulator.server import EmulatorServer, in_process_client

API_KEY = "rnd_safety_test_key_0123456789"
GOOD, NEW, OTHER = "a" * 40, "b" * 40, "c" * 40
ROOT = Path(__file__).resolve().parents[2]


# -- the local Render ------------------------------------------------------------------------------------------
@dataclass
class SafetyRuntime(SimulatedRuntime):
    """Simulated deploys with a separate duration for rollbacks, and builds that can be declared expired."""

    rollback_update_s: float | None = None
    expired: set[str] = field(default_factory=set)

    def _phases(self, service: Any, deploy: Any) -> list[tuple[str, float]]:
        phases = super()._phases(service, deploy)
        if deploy.trigger == "rollback" and self.rollback_update_s is not None:
            phases = [(p, self.rollback_update_s if p == "update" else d) for p, d in phases]
        return phases

    def has_build(self, service: Any, deploy: Any) -> bool:
        return deploy.id not in self.expired


class HealthApp:
    """``GET /svc/<name>/health`` answers like the sample app: 200 ``{status, commit}`` with the live commit, or
    500 when that commit is listed in ``unhealthy`` (or has used up its ``healthy_answers``). Records requests.
    ``reported`` maps a live commit to the commit its instance claims instead (a stale instance)."""

    def __init__(self, emulator: Emulator):
        self.emulator = emulator
        self.unhealthy: set[str] = set()
        self.reported: dict[str, str] = {}
        self.healthy_answers: dict[str, int] = {}
        self.requests: list[str] = []
        self.app = LoopbackApp(self._respond)

    def _respond(self, request: Any) -> tuple[int, dict[str, Any]]:
        parts = request.path.strip("/").split("/")
        self.requests.append(request.path)
        commit = self.live_commit(parts[1]) if len(parts) >= 2 and parts[0] == "svc" else None
        if commit is not None and commit in self.healthy_answers:  # healthy N times, then broken
            self.healthy_answers[commit] -= 1
            if self.healthy_answers[commit] < 0:
                self.unhealthy.add(commit)
        claimed = self.reported.get(commit, commit) if commit is not None else None
        if commit is None or commit in self.unhealthy:
            return 500, {"status": "broken", "commit": claimed}
        return 200, {"status": "healthy", "commit": claimed}

    @property
    def base(self) -> str:
        return self.app.base

    def live_commit(self, name: str) -> str | None:
        service = next((s for s in self.emulator.services.values() if s.name == name), None)
        if service is None:
            return None
        live = self.emulator.service(service.id).live()
        return live.commit_id if live else None

    def stop(self) -> None:
        self.app.close()


class LocalRender:
    """The local Render (simulated deploys on the real clock) on loopback, plus each service's health endpoint."""

    def __init__(self, *, build_s: float = 0.0, update_s: float = 0.0, rollback_update_s: float | None = None):
        self.runtime = SafetyRuntime(build_s=build_s, update_s=update_s, rollback_update_s=rollback_update_s)
        self.emulator = Emulator(runtime=self.runtime, clock=time.time, api_keys=(API_KEY,))
        self.health = HealthApp(self.emulator)
        self.server = EmulatorServer(self.emulator).start()

    @property
    def url(self) -> str:
        return self.server.url

    def add_service(self, name: str = "api", live: str | None = GOOD) -> Any:
        service = self.emulator.add_service(ServiceDef(type="web", name=name, branch="main", autoDeploy=True,
                                                       healthCheckPath="/health"),
                                            url=f"{self.health.base}/svc/{name}")
        if live is not None:  # the first release goes live at once, whatever the runtime's durations
            durations = (self.runtime.build_s, self.runtime.update_s)
            self.runtime.build_s = self.runtime.update_s = 0.0
            try:
                self.deploy_now(name, live)
            finally:
                self.runtime.build_s, self.runtime.update_s = durations
        return service

    def service(self, name: str = "api") -> Any:
        found = next(s for s in self.emulator.services.values() if s.name == name)
        return self.emulator.service(found.id)

    def deploy_now(self, name: str, commit: str) -> Any:
        """A deploy made directly on the emulator (as if by someone else), waited on until it ends."""
        deploy, _ = self.emulator.trigger(self.service(name), commit_id=commit, trigger="manual")
        deadline = time.monotonic() + 30
        while self.service(name) and deploy.status not in ("live", "deactivated", "build_failed", "update_failed",
                                                           "canceled", "pre_deploy_failed"):
            if time.monotonic() > deadline:
                raise AssertionError(f"deploy {deploy.id} did not finish: {deploy.status}")
            time.sleep(0.05)
        return deploy

    def deploys(self, name: str = "api") -> list[Any]:
        return list(self.service(name).deploys)

    def live_commit(self, name: str = "api") -> str | None:
        live = self.service(name).live()
        return live.commit_id if live else None

    def client(self, sleep: Callable[[float], None]) -> Any:
        from deploypipe.render.client import RenderClient

        return RenderClient(in_process_client(self.emulator, API_KEY), sleep=sleep)

    def env(self) -> dict[str, str]:
        return {"RENDER_API_URL": self.url, "RENDER_API_KEY": API_KEY}

    def close(self) -> None:
        self.server.stop()
        self.health.stop()


# -- pipelines -------------------------------------------------------------------------------------------------
def write_pipeline(root: Path, text: str, name: str = "p.yaml") -> Path:
    path = root / "pipelines" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def deploy_pipeline(*, name: str = "release", commit: str = NEW, database: bool = False, verify: bool = True,
                    after: str = "", poll_s: float = 0.2, observe_s: float = 0, extra_targets: str = "") -> str:
    """A pipeline that deploys ``api`` at ``commit`` and verifies it; ``after`` adds stages at the end."""
    db = "  databases:\n    main: {url: \"${DATABASE_URL}\"}\n" if database else ""
    text = (f"version: 1\nname: {name}\nvariables:\n  RENDER_API_KEY: {{secret: true}}\n"
            f"targets:\n  services:\n    api: {{name: api, health_path: /health}}\n{extra_targets}{db}"
            f"stages:\n  - id: deploy\n    type: render.deploy\n"
            f"    with: {{service: api, commit: \"{commit}\", poll_s: {poll_s}, timeout_s: 120}}\n")
    if verify:
        text += ("  - id: verify\n    type: verify.health\n"
                 "    with: {service: api, successes: 1, interval_s: 0.1, healthy_within_s: 5, "
                 f"observe_s: {observe_s}, failure_threshold: 2}}\n")
    return text + after


# -- the real CLI ----------------------------------------------------------------------------------------------
CLI = [sys.executable, "-c", "from deploypipe.cli import main; main()"]


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RENDER_", "DEPLOYPIPE_", "DATABASE_URL", "GITHUB_", "PYTEST_"))}
    env.update({"CI": "true", "DEPLOYPIPE_LOG_LEVEL": "info"})
    env.update(extra)
    return env


def deploypipe(root: Path, *args: str, env: dict[str, str], timeout: float = 90) -> subprocess.CompletedProcess:
    """Run the real CLI to completion; returncode is the process's exit status."""
    return subprocess.run([*CLI, *args], cwd=root, env=env, capture_output=True, text=True, timeout=timeout)


@dataclass
class Cli:
    """A running CLI process (own session, so its children can be cleaned up), its output captured to files."""

    proc: subprocess.Popen
    root: Path
    out_path: Path
    err_path: Path

    @classmethod
    def start(cls, root: Path, *args: str, env: dict[str, str], tag: str = "cli",
              stdin: Any = subprocess.DEVNULL) -> Cli:
        out, err = root / f".{tag}.stdout", root / f".{tag}.stderr"
        with open(out, "w") as o, open(err, "w") as e:
            proc = subprocess.Popen([*CLI, *args], cwd=root, env=env, stdout=o, stderr=e, stdin=stdin,
                                    start_new_session=True)
        return cls(proc, root, out, err)

    @property
    def stdout(self) -> str:
        return self.out_path.read_text()

    @property
    def stderr(self) -> str:
        return self.err_path.read_text()

    def wait(self, timeout: float = 90) -> int:
        return self.proc.wait(timeout)

    def signal(self, signum: int) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signum)

    def cleanup(self) -> None:
        """Kill whatever is left of the process group (the CLI and the commands it started)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass


# -- run records -----------------------------------------------------------------------------------------------
def run_dirs(root: Path) -> list[Path]:
    runs = root / ".deploypipe" / "runs"
    return sorted(p for p in runs.iterdir() if p.is_dir()) if runs.is_dir() else []


def events_of(run_dir: Path | str) -> list[dict[str, Any]]:
    path = Path(run_dir) / "events.jsonl"
    if not path.exists():
        return []
    events = []
    for line in path.read_text().splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return events


def named(events: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in events if e.get("event") == name]


def journal_has(root: Path, event: str) -> Path | None:
    """The run directory whose journal has ``event`` (the newest run), else None."""
    for run_dir in reversed(run_dirs(root)):
        if named(events_of(run_dir), event):
            return run_dir
    return None


def report_of(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "report.json").read_text())


def invocation(root: Path, env: dict[str, str], *, render: LocalRender | None = None, sleep: Any = None,
               clock: Any = None, **kwargs: Any) -> Any:
    """An in-process invocation (JSON output captured, not interactive) bound to ``render`` when given."""
    if render is not None and sleep is not None:
        kwargs.setdefault("render_factory", lambda: render.client(sleep))
    return base_invocation(root, env=env, pipeline=kwargs.pop("pipeline", "pipelines/p.yaml"), json_output=True,
                           sleep=sleep, clock=clock, **kwargs)


def run_in_process(root: Path, render: LocalRender | None, clock: Any, *, env: dict[str, str] | None = None,
                   resume: str | None = None, **kwargs: Any) -> tuple[Any, Any]:
    """Run ``pipelines/p.yaml`` in this process (waits collected by ``clock``); (report as written, invocation)."""
    from deploypipe.commands.run import emit_report, run_pipeline

    inv = invocation(root, {"PATH": "/usr/bin:/bin", "HOME": str(root), **(env or {})}, render=render,
                     sleep=clock, clock=clock.time, **kwargs)
    report = run_pipeline(inv, resume=resume)
    emit_report(inv, report)
    return report, inv


# -- "perform, then fail" network faults ----------------------------------------------------------------------
class PerformThenFail(httpx.BaseTransport):
    """An httpx transport around another: the next ``times`` requests matching ``match`` ('METHOD /v1/path-glob')
    are performed by the inner transport (Render did the work), and then the answer is lost: replaced by a
    ``status`` (5xx) answer, or the connection drops (``httpx.RemoteProtocolError``)."""

    def __init__(self, inner: Any, *, match: str, action: str = "5xx", status: int = 502, times: int = 1):
        import fnmatch

        self.inner, self.action, self.status, self.times = inner, action, status, times
        self.method, _, self.glob = match.partition(" ")
        self._fnmatch = fnmatch.fnmatchcase
        self.sent: list[str] = []

    def handle_request(self, request: Any) -> Any:
        self.sent.append(f"{request.method} {request.url.path}")
        response = self.inner.handle_request(request)
        if self.times > 0 and request.method == self.method and self._fnmatch(request.url.path, self.glob):
            self.times -= 1
            if self.action == "drop":
                raise httpx.RemoteProtocolError("server disconnected without sending a response", request=request)
            return httpx.Response(self.status, json={"id": "bad-gateway", "message": "upstream answered badly"},
                                  request=request)
        return response

    def close(self) -> None:
        self.inner.close()

    def count(self, prefix: str) -> int:
        return sum(1 for item in self.sent if item.startswith(prefix))


def faulty_client(render: LocalRender, sleep: Callable[[float], None], **fault: Any) -> tuple[Any, PerformThenFail]:
    """A RenderClient bound in-process to ``render`` through a PerformThenFail transport."""
    from deploypipe.emulator.app import create_app
    from deploypipe.emulator.transport import InProcessTransport
    from deploypipe.render.client import RenderClient

    transport = PerformThenFail(InProcessTransport(create_app(render.emulator)), **fault)
    http = httpx.Client(transport=transport, base_url="http://render.local/v1",
                        headers={"Authorization": f"Bearer {API_KEY}", "Accept": "application/json"})
    return RenderClient(http, sleep=sleep), transport
