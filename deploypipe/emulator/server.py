"""Build a local Render from a Blueprint and serve it: in-process (tests) or with uvicorn on 127.0.0.1.

    emulator = build_emulator(blueprint=Path("render.yaml"), repo=Path("."), data_dir=Path(".render"))
    with EmulatorServer(emulator) as server:          # real HTTP on 127.0.0.1:<port>
        RenderClient.from_env({"RENDER_API_URL": server.url, "RENDER_API_KEY": key})
    client = in_process_client(emulator, key)         # an httpx.Client running the app in-process

``deploypipe emulator --port N --blueprint render.yaml --repo PATH [--faults F]`` runs it until stopped.
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import httpx
import structlog

from deploypipe.core.polling import poll
from deploypipe.emulator.app import apply_fault, create_app
from deploypipe.emulator.blueprint import load_blueprint
from deploypipe.emulator.databases import stable_id
from deploypipe.emulator.state import Emulator
from deploypipe.emulator.telemetry import Telemetry
from deploypipe.emulator.telemetry_file import TelemetryFile
from deploypipe.errors import SpecError

__all__ = ["EmulatorServer", "build_emulator", "in_process_client", "serve"]

log = structlog.get_logger("deploypipe.emulator")


def build_emulator(*, blueprint: Path | None = None, repo: Path | None = None, data_dir: Path | None = None,
                   api_keys: tuple[str, ...] = ("rnd_test_key",), databases: Mapping[str, str] | None = None,
                   clock: Callable[[], float] = time.time, runtime: Any = None, faults: list[dict] | None = None,
                   health_grace_s: float = 30.0, health_interval_s: float = 0.25,
                   auto_deploy_poll_s: float = 1.0, ingest_delay_s: float = 0.0, recovery_min_age_s: float = 600.0,
                   recovery_window_days: float = 7.0, recovery_creating_s: float = 2.0) -> Emulator:
    """An Emulator loaded with the Blueprint's services and databases, its saved state restored.

    With ``repo`` (and no explicit ``runtime``) deploys are real processes (``ProcessRuntime``); otherwise
    simulated. ``databases`` maps Blueprint database names to existing URLs to attach to; the others are created
    in an embedded PostgreSQL under ``data_dir``. ``faults``: rule mappings as in ``faults.py``. With ``repo``,
    new commits on a service's branch auto-deploy it (``autoDeploy: yes``), checked every ``auto_deploy_poll_s``
    seconds (0 turns the watcher off). ``ingest_delay_s``: metrics and logs appear that long after the fact, as
    Render's arrive late; with ``data_dir`` they are kept across runs in its ``telemetry.jsonl``. Point-in-time
    recovery knobs (``recovery.py``): ``recovery_min_age_s`` (Render: 600, "not within the last 10 minutes"; 0 lets
    the local default clone a restore point at once), ``recovery_window_days`` (Render: 3 or 7) and
    ``recovery_creating_s`` (how long a new clone stays ``creating``). A cron job without a valid ``schedule`` is a
    SpecError; with ``repo``, schedules run on their own (``cron.CronTicker``), else on each API request.
    """
    from deploypipe.emulator.databases import provision
    from deploypipe.emulator.process_runtime import ProcessRuntime

    if runtime is None and repo is not None:
        if data_dir is None:
            raise ValueError("build_emulator: a data_dir is needed to run real processes (builds and logs go there)")
        runtime = ProcessRuntime(repo=repo, data_dir=data_dir, health_grace_s=health_grace_s,
                                 health_interval_s=health_interval_s)
    if data_dir is not None:
        data_dir.mkdir(parents=True, exist_ok=True)
    emulator = Emulator(runtime=runtime, clock=clock, api_keys=api_keys, data_dir=data_dir,
                        state_file=data_dir / "state.json" if data_dir is not None else None,
                        telemetry=Telemetry(clock, ingest_delay_s=ingest_delay_s, store=TelemetryFile(
                            data_dir / "telemetry.jsonl") if data_dir is not None else None))
    emulator.recovery.min_age_s, emulator.recovery.window_days = recovery_min_age_s, recovery_window_days
    emulator.recovery.creating_s = recovery_creating_s
    if blueprint is not None:
        spec = load_blueprint(blueprint)
        provision(emulator, spec.databases, attached=databases, data_dir=data_dir)
        for service in spec.services:
            rec = emulator.add_service(service, service_id=stable_id("srv", service.name))
            proxy_for = getattr(emulator.runtime, "proxy_for", None)
            if proxy_for is not None:
                rec.url = proxy_for(rec, emulator).url
        from deploypipe.emulator.cron import check_schedules

        problems = check_schedules(emulator)
        if problems:
            raise SpecError("; ".join(problems), where=str(blueprint),
                            hint="a cron job's schedule is five fields in UTC: minute hour day-of-month month "
                                 "day-of-week")
    emulator.load()
    for rule in faults or []:
        apply_fault(emulator, rule)
    if repo is not None and auto_deploy_poll_s > 0:
        from deploypipe.emulator.autodeploy import BranchWatcher

        emulator.on_close.append(BranchWatcher(emulator, repo, auto_deploy_poll_s).start().stop)
    if repo is not None and any(s.spec.type == "cron" for s in emulator.services.values()):
        from deploypipe.emulator.cron import CronTicker

        emulator.on_close.append(CronTicker(emulator).start().stop)
    return emulator


def in_process_client(emulator: Emulator, api_key: str = "rnd_test_key") -> httpx.Client:
    """An ``httpx.Client`` that runs the emulator app in-process (no socket)."""
    from deploypipe.emulator.transport import InProcessTransport

    return httpx.Client(transport=InProcessTransport(create_app(emulator)), base_url="http://render.local/v1",
                        headers={"Authorization": f"Bearer {api_key}", "Accept": "application/json"})


class EmulatorServer:
    """The emulator on a real loopback port, served by uvicorn in a background thread."""

    def __init__(self, emulator: Emulator, *, host: str = "127.0.0.1", port: int = 0):
        import uvicorn

        self.emulator = emulator
        config = uvicorn.Config(create_app(emulator), host=host, port=port, log_level="warning", lifespan="off",
                                access_log=False, timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)  # in a thread that is not the main one it installs no signal handlers
        self.thread = threading.Thread(target=self.server.run, name="render-emulator", daemon=True)
        self.host = host
        self.port = port
        self.started = threading.Event()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> EmulatorServer:
        self.thread.start()

        def up() -> bool | None:
            if self.server.started:
                return True
            return None if self.thread.is_alive() else False

        if not poll(up, timeout_s=15, interval_s=0.02):
            raise RuntimeError("the local Render did not start")
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        self.started.set()
        return self

    def stop(self) -> None:
        """Stop serving, then stop every process, proxy and embedded database of the emulator."""
        self.emulator.closing.set()  # cuts injected stalls short so uvicorn can finish
        self.server.should_exit = True
        self.thread.join(10)
        self.emulator.close()

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(*, port: int = 10000, blueprint: Path = Path("render.yaml"), repo: Path = Path("."),
          data_dir: Path = Path(".deploypipe/emulator"), api_key: str = "rnd_test_key",
          faults: Path | None = None, databases: Mapping[str, str] | None = None, health_grace_s: float = 30.0,
          health_interval_s: float = 0.25, auto_deploy_poll_s: float = 1.0, ingest_delay_s: float = 0.0,
          recovery_min_age_s: float = 600.0, recovery_window_days: float = 7.0, recovery_creating_s: float = 2.0,
          stop: threading.Event | None = None) -> int:
    """Run the local Render for ``blueprint`` on 127.0.0.1:``port`` until ``stop`` is set (or SIGTERM/SIGINT).

    Services build from commits of the git repository ``repo``; builds, logs, exports, the embedded PostgreSQL and
    ``state.json`` go to ``data_dir``; ``faults`` is a YAML/JSON file of fault rules; ``databases`` maps Blueprint
    database names to existing URLs; ``recovery_*`` are the point-in-time recovery knobs of ``build_emulator``.
    Returns the exit status (0).
    """
    from deploypipe.emulator.faults import load_faults

    emulator = build_emulator(blueprint=blueprint, repo=repo.resolve(), data_dir=data_dir.resolve(),
                              api_keys=(api_key,), databases=databases,
                              faults=load_faults(faults) if faults else None, health_grace_s=health_grace_s,
                              health_interval_s=health_interval_s, auto_deploy_poll_s=auto_deploy_poll_s,
                              ingest_delay_s=ingest_delay_s, recovery_min_age_s=recovery_min_age_s,
                              recovery_window_days=recovery_window_days, recovery_creating_s=recovery_creating_s)
    server = EmulatorServer(emulator, port=port).start()
    log.info("emulator_serving", url=server.url, services=len(emulator.services),
             databases=len(emulator.postgres), data_dir=str(data_dir))
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.stop()
    log.info("emulator_stopped", url=server.url)
    return 0

