"""Fixtures for the sample app tests: one embedded PostgreSQL per session, the app started as render.yaml says.

Imported by conftest.py and the test modules (``from sampleapp_fixtures import ...``), like tests/db/dbfixtures.py.
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import httpx
import pytest

from deploypipe.core.embedded_pg import EmbeddedPostgres, start_embedded
from deploypipe.core.yamlio import load_yaml

ROOT = Path(__file__).resolve().parents[2]
APP_DIR = ROOT / "examples" / "sampleapp"
_names = itertools.count()


def blueprint_service(name: str = "sampleapp") -> dict:
    """The service entry of the repository's render.yaml."""
    data = load_yaml(ROOT / "render.yaml").data
    return next(s for s in data["services"] if s["name"] == name)


def venv_env(**extra: str) -> dict[str, str]:
    """The environment a child process gets: this interpreter's bin dir first on PATH, no inherited DB/Render vars."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RENDER_", "DATABASE_URL", "PG"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def alembic(url: str, *args: str) -> subprocess.CompletedProcess:
    """Run the alembic CLI in the app directory against ``url``; fail the test with its output on error."""
    proc = subprocess.run([sys.executable, "-m", "alembic", *args], cwd=APP_DIR, env=venv_env(DATABASE_URL=url),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"alembic {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RunningApp:
    url: str
    process: subprocess.Popen
    log: Path

    def get(self, path: str, **kwargs) -> httpx.Response:
        return httpx.get(self.url + path, timeout=10, **kwargs)

    def post(self, path: str, **kwargs) -> httpx.Response:
        return httpx.post(self.url + path, timeout=10, **kwargs)


@pytest.fixture(scope="session")
def pg(tmp_path_factory) -> Iterator[EmbeddedPostgres]:
    server = start_embedded(tmp_path_factory.mktemp("sampleapp-pg") / "data")
    yield server
    server.stop()


@pytest.fixture
def new_database(pg) -> Callable[[], str]:
    """Create a fresh, empty database owned by a password-protected role; return its URL."""
    def make() -> str:
        return pg.create_database(f"sampleapp_{next(_names)}", owner="sampleapp", password="s3cret-pw")
    return make


@pytest.fixture(scope="module")
def migrated_url(pg) -> str:
    """A database migrated to head with `alembic upgrade head`, as the pipeline's db.migrate stage does."""
    url = pg.create_database(f"sampleapp_m{next(_names)}", owner="sampleapp", password="s3cret-pw")
    alembic(url, "upgrade", "head")
    return url


def _start(tmp: Path, env: dict[str, str]) -> RunningApp:
    port = free_port()
    log = tmp / f"app-{port}.log"
    command = blueprint_service()["startCommand"]
    with log.open("wb") as out:
        process = subprocess.Popen(["bash", "-c", command], cwd=APP_DIR, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True,
                                   env=venv_env(HOST="127.0.0.1", PORT=str(port), PYTHONDONTWRITEBYTECODE="1", **env))
    app = RunningApp(f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the app exited with {process.returncode}:\n{log.read_text()}")
        try:  # uvicorn listens once the app is loaded; probing a port does not touch the database
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return app
        except OSError:
            time.sleep(0.1)  # a real process starting up
    os.killpg(process.pid, signal.SIGKILL)
    pytest.fail(f"the app did not answer within 30 s:\n{log.read_text()}")


@pytest.fixture
def start_app(tmp_path) -> Iterator[Callable[..., RunningApp]]:
    """Start the app with the Blueprint's startCommand (HOST=127.0.0.1) and the given environment."""
    started: list[RunningApp] = []

    def start(**env: str) -> RunningApp:
        app = _start(tmp_path, env)
        started.append(app)
        return app

    yield start
    for app in started:
        _stop(app.process)


@pytest.fixture(scope="module")
def migrated_app(tmp_path_factory, migrated_url) -> Iterator[RunningApp]:
    """One app per module on the migrated database (for tests that do not care about other tests' notes)."""
    app = _start(tmp_path_factory.mktemp("app"), {"DATABASE_URL": migrated_url, "RENDER_GIT_COMMIT": "0123abc"})
    yield app
    _stop(app.process)


def _stop(process: subprocess.Popen) -> None:
    """Stop the process group this fixture started (bash and uvicorn), by its id."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
