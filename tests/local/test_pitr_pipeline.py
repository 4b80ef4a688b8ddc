"""A pipeline in ``mode: pitr`` end to end: the real CLI as a subprocess, the local Render on loopback (recovery knob
``min_age_s`` 0, clones in its embedded PostgreSQL), production in another embedded PostgreSQL.

The release passes (exit 0): the restore point is journaled before the migration, the dry run migrates a PITR clone
(production only in db.migrate), and the clone is gone afterwards -- also after a failed dry run (exit 1) and after
SIGTERM during the dry run (exit 1); production is untouched in both. A release that fails after the migration is
rolled back to the restore point through Render's PITR (exit 3), only when confirmed (exit 4 otherwise).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import sys
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import httpx
import psycopg
import pytest
from harness import (  # the safety tests' world: local Render on loopback, the real CLI, journals
    API_KEY,
    GOOD,
    NEW,
    Cli,
    HealthApp,
    LocalRender,
    SafetyRuntime,
    cli_env,
    deploypipe,
    events_of,
    named,
    report_of,
    run_dirs,
    write_pipeline,
)
from helpers import wait_until

from deploypipe.core.embedded_pg import EmbeddedPostgres, start_embedded
from deploypipe.db.pitr import BILLING_NOTE
from deploypipe.emulator.records import PostgresRec
from deploypipe.emulator.server import EmulatorServer, build_emulator

pytestmark = pytest.mark.e2e

PASSWORD = "big-db-secret-pw-42"
_names = itertools.count()

MIGRATION = textwrap.dedent('''\
    """The release's migration: notes.priority (or, mode rename, notes.body renamed), revision a1 -> b2. Records
    where it ran (database, rows)."""
    import os, sys, time
    import psycopg

    evidence = sys.argv[1]
    mode = sys.argv[2] if len(sys.argv) > 2 else "ok"
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        database = conn.execute("select current_database()").fetchone()[0]
        rows = conn.execute("select count(*) from notes").fetchone()[0]
        with open(evidence, "a") as handle:
            handle.write(f"{database} {rows} {os.getpid()}\\n")
        if mode == "sleep":
            open(evidence + ".sleeping", "w").close()
            time.sleep(60)
        with conn.transaction():
            if mode == "rename":  # what the live release reads disappears
                conn.execute("alter table notes rename column body to text")
            else:
                conn.execute("alter table notes add column priority int")
            conn.execute("update alembic_version set version_num = 'b2'")
            if mode == "fail":
                conn.execute("select 1 / 0")
''')


class PitrRender(LocalRender):
    """The safety tests' local Render (simulated deploys, a health endpoint per service), with a data dir so it
    does point-in-time recovery, and Render's "not within the last 10 minutes" knob at 0."""

    def __init__(self, data_dir: Path):
        self.runtime = SafetyRuntime()
        self.emulator = build_emulator(data_dir=data_dir, api_keys=(API_KEY,), runtime=self.runtime,
                                       recovery_min_age_s=0, recovery_creating_s=0.2)
        self.health = HealthApp(self.emulator)
        self.server = EmulatorServer(self.emulator).start()

    def api(self, method: str, path: str) -> Any:
        answer = httpx.request(method, f"{self.url}{path}", headers={"Authorization": f"Bearer {API_KEY}"},
                               trust_env=False)
        answer.raise_for_status()
        return answer.json() if answer.content else None

    def clones_of(self, postgres_id: str) -> list[str]:
        """The clones of ``postgres_id`` that ``GET /v1/postgres`` lists, by name."""
        listed = {item["postgres"]["id"]: item["postgres"]["name"] for item in self.api("GET", "/postgres")}
        return sorted(name for pid, name in listed.items()
                      if pid in self.emulator.postgres and self.emulator.postgres[pid].recovered_from == postgres_id)


@dataclass
class World:
    render: PitrRender
    production: EmbeddedPostgres


@dataclass
class Release:
    """One test's project: a production database on the local Render, a service, the pipeline's files."""

    root: Path
    name: str
    url: str
    service: str
    evidence: Path

    @property
    def postgres_id(self) -> str:
        return f"dpg-{self.name}"

    def env(self, render: PitrRender) -> dict[str, str]:
        return cli_env(**render.env(), DATABASE_URL=self.url)


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    root = Path(tempfile.mkdtemp(prefix="deploypipe-pitr-"))  # outside basetemp: pgserver runs as its own user
    production = start_embedded(root / "production-pg")
    render = PitrRender(root / "render")
    try:
        yield World(render, production)
    finally:
        render.close()
        production.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def release(world: World, tmp_path: Path) -> Iterator[Release]:
    number = next(_names)
    name, service = f"bigdb{number}", f"api{number}"
    url = world.production.create_database(name, owner="app", password=PASSWORD)
    sql(url, "create table notes (id int primary key, body text)")
    sql(url, "insert into notes select i, 'note ' || i from generate_series(1, 5) i")
    sql(url, "create table alembic_version (version_num varchar(32) primary key)")
    sql(url, "insert into alembic_version values ('a1')")
    world.render.emulator.add_postgres(PostgresRec(id=f"dpg-{name}", name=name, database=name, user="app",
                                                   password=PASSWORD, url=url, version="16", created_at=0.0))
    world.render.add_service(service, live=GOOD)
    (tmp_path / "migrate.py").write_text(MIGRATION)
    made = Release(tmp_path, name, url, service, tmp_path / "evidence.txt")
    yield made
    for pid, rec in list(world.render.emulator.postgres.items()):  # a clone left behind must not fail later tests
        if rec.recovered_from == made.postgres_id:
            world.render.api("DELETE", f"/postgres/{pid}")


def sql(url: str, statement: str) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(statement)
        return cursor.fetchall() if cursor.description else []


def pipeline(release: Release, *, mode: str = "ok", on_rollback: str = "restore", confirmed: bool = True,
             database: str = "mode: pitr, pitr_min_age_s: 0", compat: str = "") -> Path:
    """The release's pipeline; ``compat``: the live release's start command, which the dry run then checks
    (``compat_service: api``, after a render.preflight; the verification's smoke path is /)."""
    command = f"{sys.executable} {release.root / 'migrate.py'} {release.evidence}"
    preflight = "\n          - {id: preflight, type: render.preflight}" if compat else ""
    checked = f', compat_command: "{compat}", compat_service: api' if compat else ""
    smoke = ", smoke: [{path: /}]" if compat else ""
    return write_pipeline(release.root, f"""\
        version: 1
        name: big-db-release
        variables:
          RENDER_API_KEY: {{secret: true}}
          DATABASE_URL: {{secret: true}}
        targets:
          services:
            api: {{name: {release.service}, health_path: /health}}
          databases:
            main: {{url: "${{DATABASE_URL}}", render_postgres: {release.name}, {database}}}
        stages:{preflight}
          - id: backup
            type: db.backup
            with: {{database: main}}
          - id: dry-run
            type: db.dry_run
            with: {{database: main, command: "{command}{'' if mode == 'ok' else ' ' + mode}"{checked}}}
          - id: migrate
            type: db.migrate
            with: {{database: main, command: "{command}", on_rollback: {on_rollback},
                   restore_confirmed: {str(confirmed).lower()}}}
          - id: deploy
            type: render.deploy
            with: {{service: api, commit: "{NEW}", poll_s: 0.2, timeout_s: 60}}
          - id: verify
            type: verify.health
            with: {{service: api, successes: 1, interval_s: 0.1, healthy_within_s: 3, observe_s: 0,
                   failure_threshold: 2{smoke}}}
        """)


def ran_on(release: Release) -> list[tuple[str, int]]:
    """(database, notes rows) of each run of the migration command, in order."""
    lines = release.evidence.read_text().split() if release.evidence.exists() else []
    return [(lines[i], int(lines[i + 1])) for i in range(0, len(lines), 3)]


def production_state(release: Release) -> tuple[str, list[str], int]:
    revision = sql(release.url, "select version_num from alembic_version")[0][0]
    columns = [r[0] for r in sql(release.url, "select column_name from information_schema.columns "
                                               "where table_name = 'notes' order by 1")]
    return revision, columns, sql(release.url, "select count(*) from notes")[0][0]


def clones(world: World, release: Release) -> list[str]:
    """The clones of the release's production database that ``GET /v1/postgres`` lists."""
    return world.render.clones_of(release.postgres_id)


def the_run(release: Release) -> tuple[Path, list[dict[str, Any]]]:
    (run_dir,) = run_dirs(release.root)
    return run_dir, events_of(run_dir)


def index(events: list[dict[str, Any]], event: str, stage: str | None = None) -> int:
    return next(i for i, e in enumerate(events) if e.get("event") == event and stage in (None, e.get("stage")))


def test_a_pitr_release_dry_runs_on_a_clone_at_the_journaled_restore_point_and_deploys(world, release):
    pipeline(release)
    result = deploypipe(release.root, "deploy", "--pipeline", "pipelines/p.yaml", "--json",
                        env=release.env(world.render))
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir, events = the_run(release)
    (point,) = named(events, "restore_point_recorded")
    assert point["postgres_id"] == release.postgres_id and point["at"].endswith("Z")
    # the restore point is journaled before the dry run and the migration start
    assert index(events, "restore_point_recorded") < index(events, "stage_started", "dry-run") < index(
        events, "stage_started", "migrate") < index(events, "migration_finished")
    (ready,) = named(events, "pitr_clone_ready")
    assert ready["restore_time"] == point["at"] and ready["billing"] == BILLING_NOTE
    # the dry run's migration ran on the clone (a database of its own holding production's rows), production after
    clone_database, production_database = ran_on(release)
    assert clone_database[0].startswith("pitr_deploypipe_dry_run") and clone_database[1] == 5
    assert production_database == (release.name, 5)
    assert production_state(release) == ("b2", ["body", "id", "priority"], 5)
    report = report_of(run_dir)
    backup, dry = report["stages"][0]["outputs"], report["stages"][1]["outputs"]
    assert (backup["kind"], backup["verified"], backup["restore_time"], backup["path"]) == (
        "restore_point", True, point["at"], "")
    assert backup["verified_on"] == f"Render point-in-time recovery of {release.postgres_id}: AVAILABLE"
    assert dry["ok"] and dry["backup_id"] == backup["backup_id"] and ready["clone_id"] in dry["staging"]
    assert dry["run"]["revision_before"] == "a1" and dry["run"]["revision_after"] == "b2"
    assert dry["run"]["schema_changes"] == {"columns_added": ["public.notes.priority integer"]}
    assert not report["stages"][2]["outputs"]["warnings"]  # the same command, the same restore point
    assert [d["status"] for d in report["deploys"]] == ["live"] and world.render.live_commit(release.service) == NEW
    # the clone is gone: GET /v1/postgres lists only the databases that are not clones
    assert named(events, "pitr_clone_deleted") and not clones(world, release)
    for text in (result.stdout, result.stderr, (run_dir / "events.jsonl").read_text()):
        assert PASSWORD not in text


def test_a_failed_dry_run_on_the_clone_blocks_with_exit_1_deletes_the_clone_and_leaves_production(world, release):
    pipeline(release, mode="fail")
    result = deploypipe(release.root, "deploy", "--pipeline", "pipelines/p.yaml", "--json",
                        env=release.env(world.render))
    assert result.returncode == 1, result.stderr[-3000:]
    run_dir, events = the_run(release)
    report = report_of(run_dir)
    dry = report["stages"][1]
    assert dry["status"] == "failed" and "division by zero" in dry["error"]["message"]
    assert "the migration failed on a copy of production (PITR clone" in dry["error"]["message"]
    assert [e["ok"] for e in named(events, "dry_run_finished")] == [False]
    assert not [e for e in events if e.get("stage") == "migrate"]
    assert [db for db, _ in ran_on(release)] == [ran_on(release)[0][0]] and ran_on(release)[0][0] != release.name
    assert production_state(release) == ("a1", ["body", "id"], 5)
    assert not clones(world, release) and world.render.live_commit(release.service) == GOOD


def test_sigterm_during_the_dry_run_deletes_the_clone_and_exits_1(world, release):
    pipeline(release, mode="sleep")
    cli = Cli.start(release.root, "deploy", "--pipeline", "pipelines/p.yaml", env=release.env(world.render))
    try:
        wait_until(lambda: Path(f"{release.evidence}.sleeping").exists(), timeout=60,
                   what="the dry run's migration to run on the clone")
        (clone,) = clones(world, release)  # the clone exists now, and GET /v1/postgres lists it
        assert clone.startswith("deploypipe-dry-run-")
        cli.signal(signal.SIGTERM)
        code = cli.wait(30)
    finally:
        cli.cleanup()
    assert code == 1, cli.stderr[-3000:]
    assert not clones(world, release)
    (_, _, pid) = release.evidence.read_text().split()
    with pytest.raises(ProcessLookupError):  # the migration command was stopped too
        os.kill(int(pid), 0)
    assert production_state(release) == ("a1", ["body", "id"], 5)
    _, events = the_run(release)
    assert named(events, "interrupted") and not [e for e in events if e.get("stage") == "migrate"]


def test_a_failed_release_restores_production_to_the_restore_point_through_pitr_when_confirmed(world, release):
    world.render.health.unhealthy.add(NEW)
    try:
        pipeline(release)
        result = deploypipe(release.root, "deploy", "--pipeline", "pipelines/p.yaml", "--json",
                            env=release.env(world.render))
    finally:
        world.render.health.unhealthy.discard(NEW)
    assert result.returncode == 3, result.stderr[-3000:]
    run_dir, events = the_run(release)
    items = {item["stage"]: item for item in report_of(run_dir)["rollback"]["items"]}
    restore = items["migrate"]
    assert (restore["action"], restore["verified"]) == ("restored", True), restore
    assert restore["details"]["restore_point"] == named(events, "restore_point_recorded")[0]["at"]
    assert production_state(release) == ("a1", ["body", "id"], 5)
    assert not clones(world, release)


def test_an_unconfirmed_restore_to_the_restore_point_is_refused_and_needs_a_human(world, release):
    world.render.health.unhealthy.add(NEW)
    try:
        pipeline(release, confirmed=False)
        result = deploypipe(release.root, "deploy", "--pipeline", "pipelines/p.yaml", "--json",
                            env=release.env(world.render))
    finally:
        world.render.health.unhealthy.discard(NEW)
    assert result.returncode == 4, result.stderr[-3000:]
    run_dir, _ = the_run(release)
    restore = {item["stage"]: item for item in report_of(run_dir)["rollback"]["items"]}["migrate"]
    assert (restore["action"], restore["verified"]) == ("restore_refused", False)
    assert production_state(release) == ("b2", ["body", "id", "priority"], 5)  # left for a human to decide
    assert not clones(world, release)


def test_plan_says_which_path_each_database_takes_and_that_the_clone_bills(tmp_path):
    release = Release(tmp_path, "big-db", "postgresql://app:pw@localhost/big", "api", tmp_path / "e")
    pipeline(release)
    result = deploypipe(tmp_path, "plan", "--pipeline", "pipelines/p.yaml", env=cli_env(DATABASE_URL=release.url))
    assert result.returncode == 0, result.stderr
    line = (f"      database path: pitr: mode: pitr (Render point-in-time recovery of big-db); {BILLING_NOTE}")
    assert result.stdout.splitlines().count(line) == 3  # backup, dry-run, migrate
    pipeline(release, database="mode: auto, pitr_above_gb: 100")
    steps = json.loads(deploypipe(tmp_path, "plan", "--pipeline", "pipelines/p.yaml", "--json",
                                  env=cli_env(DATABASE_URL=release.url)).stdout)
    assert steps[0]["database_path"] == (
        "auto: mode: auto: Render point-in-time recovery of big-db if pg_database_size > 100 GB when the run starts, "
        f"else pg_dump; with pitr, {BILLING_NOTE}")
    assert "database_path" not in steps[3]  # render.deploy


def test_auto_takes_pitr_above_its_threshold_and_the_dry_run_follows_the_backup(release, tmp_path):
    from types import SimpleNamespace

    from deploypipe.spec.targets import DatabaseTarget, Targets
    from deploypipe.stages.context import Resources
    from deploypipe.stages.db_pitr import takes_pitr
    from deploypipe.testing import stage_context

    size_gb = sql(release.url, "select pg_database_size(current_database())")[0][0] / 1024 ** 3
    events: list[tuple[str, dict[str, Any]]] = []

    def context(threshold_gb: float) -> Any:
        target = DatabaseTarget(url=release.url, render_postgres=release.name, mode="auto", pitr_above_gb=threshold_gb)
        resources = Resources(project_dir=tmp_path, state_dir=tmp_path, env={},
                              targets=Targets(databases={"main": target}))
        return stage_context(resources, stage_id="backup", stage_type="db.backup", run_dir=tmp_path / "run",
                             emit=lambda event, **fields: events.append((event, fields)))

    assert takes_pitr(context(size_gb / 2), "main") is True
    assert takes_pitr(context(size_gb * 2), "main") is False
    assert [(e, f["path"]) for e, f in events] == [("database_path_chosen", "pitr"), ("database_path_chosen", "dump")]
    assert f"> {size_gb / 2:g} GB, Render point-in-time recovery of {release.name}" in events[0][1]["reason"]
    restore_point, dump = SimpleNamespace(kind="restore_point"), SimpleNamespace(kind="dump")
    assert takes_pitr(context(size_gb * 2), "main", restore_point) is True  # the dry run follows the backup
    assert takes_pitr(context(size_gb / 2), "main", dump) is False
    assert len(events) == 2  # following the backup measures nothing
