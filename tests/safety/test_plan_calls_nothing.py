"""`plan` and `deploy --dry-run` show what would run and do nothing: no run directory, no HTTP request to Render or
anywhere else, no database connection, no local default started."""

from __future__ import annotations

import shutil
import socket
import threading

import pytest
from harness import ROOT, cli_env, deploypipe, write_pipeline

PIPELINE = """\
version: 1
name: everything
variables:
  DATABASE_URL: {secret: true}
targets:
  services:
    api: {name: api}
  databases:
    main: {url: "${DATABASE_URL}"}
stages:
  - id: preflight
    type: render.preflight
  - id: status
    type: db.migration_status
    with: {database: main, tool: sql, sql_dir: migrations}
  - id: backup
    type: db.backup
    with: {database: main}
  - id: migrate
    type: shell.run
    with: {command: "touch migrated", changes_production: true}
  - id: deploy
    type: render.deploy
    with: {service: api, commit: "%s"}
  - id: verify
    type: verify.health
    with: {service: api}
  - id: notify
    type: notify.webhook
    when: always
    with: {url_env: NOTIFY_URL}
""" % ("b" * 40)


class Trap:
    """A TCP listener on loopback that accepts and counts connections (and answers nothing)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.accepted = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.sock.getsockname()[1]

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self.thread.join(2)
        self.sock.close()


@pytest.fixture
def traps():
    made = [Trap() for _ in range(3)]
    yield made
    for trap in made:
        trap.close()


@pytest.mark.parametrize("command", [("plan",), ("plan", "--json"), ("deploy", "--dry-run"),
                                     ("deploy", "--dry-run", "--json")])
def test_plan_and_dry_run_create_no_run_directory_and_connect_to_nothing(tmp_path, traps, command):
    render, database, webhook = traps
    write_pipeline(tmp_path, PIPELINE)
    (tmp_path / "migrations").mkdir()
    env = cli_env(RENDER_API_URL=f"http://127.0.0.1:{render.port}/v1", RENDER_API_KEY="rnd_plan_key",
                  DATABASE_URL=f"postgresql://app:pw-plan-secret@127.0.0.1:{database.port}/prod",
                  NOTIFY_URL=f"http://127.0.0.1:{webhook.port}/hook")
    result = deploypipe(tmp_path, *command, "--pipeline", "pipelines/p.yaml", env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    for stage in ("preflight", "backup", "migrate", "deploy", "verify", "notify"):
        assert stage in result.stdout
    assert "pw-plan-secret" not in result.stdout + result.stderr
    assert (render.accepted, database.accepted, webhook.accepted) == (0, 0, 0)
    assert not (tmp_path / ".deploypipe").exists()  # no run directory, no lock, no state at all
    assert not (tmp_path / "migrated").exists()


@pytest.mark.parametrize("command", [("plan",), ("deploy", "--dry-run")])
def test_plan_and_dry_run_of_the_local_default_start_nothing(tmp_path, command):
    for name in ("render.yaml", "pipelines"):
        source = ROOT / name
        shutil.copytree(source, tmp_path / name) if source.is_dir() else shutil.copy2(source, tmp_path / name)
    result = deploypipe(tmp_path, *command, "--pipeline", "pipelines/local.yaml", env=cli_env())
    assert result.returncode == 0, result.stderr[-2000:]
    assert "render.release" in result.stdout
    assert not (tmp_path / ".deploypipe").exists()  # no embedded database, no local Render, no run directory
