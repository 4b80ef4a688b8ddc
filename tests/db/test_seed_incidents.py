"""The seed incidents, reproduced on real PostgreSQL and stopped by the stage that should stop them.

000: a Prisma migration left *failed* in _prisma_migrations while its tables existed (P3018 at every start);
001: CREATE EXTENSION vector WITH VERSION "0.5.1" on a server that only has 0.6.2 (22023 / P3018);
002: an Alembic migration that only fails on production data (unique index over duplicates);
004: monkey-patched op.* helpers turning one failure into "current transaction is aborted";
plus multiple Alembic heads and a database revision the repository does not know.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from dbfixtures import StageRunner, sql
from pydantic import ValidationError

from deploypipe.errors import StageFailed
from deploypipe.stages.db import DbBackup, DbDryRun
from deploypipe.stages.db_checks import DbLint, DbMigrationStatus
from deploypipe.stages.db_migrate import DbMigrate

BASE_ENV = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")}

PRISMA_INIT = """-- CreateExtension
CREATE EXTENSION IF NOT EXISTS "vector"{version};

-- CreateEnum
CREATE TYPE "Role" AS ENUM ('USER', 'ADMIN');

-- CreateTable
CREATE TABLE "users" (
    "id" TEXT NOT NULL,
    "email" TEXT NOT NULL,
    "role" "Role" NOT NULL DEFAULT 'USER',
    CONSTRAINT "users_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "organizations" (
    "id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    CONSTRAINT "organizations_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "users_email_key" ON "users"("email");

-- AddForeignKey
ALTER TABLE "users" ADD COLUMN "orgId" TEXT;
ALTER TABLE "users" ADD CONSTRAINT "users_orgId_fkey" FOREIGN KEY ("orgId") REFERENCES "organizations"("id") ON DELETE SET NULL ON UPDATE CASCADE;
"""

PRISMA_TABLE = """CREATE TABLE "_prisma_migrations" (
    "id" VARCHAR(36) PRIMARY KEY NOT NULL, "checksum" VARCHAR(64) NOT NULL, "finished_at" TIMESTAMPTZ,
    "migration_name" VARCHAR(255) NOT NULL, "logs" TEXT, "rolled_back_at" TIMESTAMPTZ,
    "started_at" TIMESTAMPTZ NOT NULL DEFAULT now(), "applied_steps_count" INTEGER NOT NULL DEFAULT 0)"""

INIT = "20251017171256_init"


def _prisma_project(root: Path, *, version: str = "") -> Path:
    migrations = root / "prisma" / "migrations"
    (migrations / INIT).mkdir(parents=True)
    (migrations / INIT / "migration.sql").write_text(PRISMA_INIT.format(version=version), encoding="utf-8")
    return migrations


def _failed_row(url: str, migrations: Path) -> None:
    """The state seed 000 found: the row says failed (finished_at null, not rolled back)."""
    digest = hashlib.sha256((migrations / INIT / "migration.sql").read_bytes()).hexdigest()
    sql(url, PRISMA_TABLE)
    sql(url, "insert into _prisma_migrations (id, checksum, migration_name, logs) values (%s, %s, %s, %s)",
        (str(uuid.uuid4()), digest, INIT, 'Database error code: 42P07\nERROR: relation "users" already exists'))


def _runner(root: Path, url: str) -> StageRunner:
    return StageRunner(root=root, databases={"main": url}, env=BASE_ENV)


# -- 001: pgvector pinned to a version the server lacks ------------------------------------------------------------

def test_lint_stops_a_prisma_migration_pinning_pgvector_0_5_1(new_db, tmp_path):
    url = new_db("pgv")
    _prisma_project(tmp_path, version=' WITH VERSION "0.5.1"')
    with pytest.raises(StageFailed) as failed:
        _runner(tmp_path, url).run("lint", DbLint, database="main", tool="prisma", prisma_dir="prisma/migrations")
    message = str(failed.value)
    assert "extension-version-unavailable" in message and '"0.5.1"' in message and "0.6.2" in message


def test_lint_stops_an_alembic_migration_pinning_pgvector_0_5_1(alembic_project, new_db, tmp_path):
    url = new_db("pgv_alembic")
    alembic_project.revision("0001", None, """op.execute('CREATE EXTENSION IF NOT EXISTS vector WITH VERSION "0.5.1"')""")
    with pytest.raises(StageFailed, match="extension-version-unavailable"):
        _runner(alembic_project.root, url).run("lint", DbLint, database="main", tool="alembic")


def test_lint_passes_the_same_migration_without_the_version_pin(new_db, tmp_path):
    url = new_db("pgv_ok")
    _prisma_project(tmp_path)
    result = _runner(tmp_path, url).run("lint", DbLint, database="main", tool="prisma", squawk=False)
    assert result.outputs.migrations == [INIT]
    assert not [f for f in result.outputs.findings if f.severity == "error"]


# -- 000: a failed _prisma_migrations row ---------------------------------------------------------------------------

def test_status_finds_the_failed_prisma_row_and_a_verified_resolve_marks_it_applied(new_db, tmp_path):
    url = new_db("p3018")
    migrations = _prisma_project(tmp_path)
    sql(url, (migrations / INIT / "migration.sql").read_text())  # the tables exist: the migration had run
    _failed_row(url, migrations)
    runner = _runner(tmp_path, url)
    with pytest.raises(StageFailed) as failed:
        runner.run("status", DbMigrationStatus, database="main", tool="prisma")
    assert "prisma-failed-migration" in str(failed.value) and INIT in str(failed.value)
    assert "every object it creates exists" in str(failed.value)

    result = runner.run("status", DbMigrationStatus, database="main", tool="prisma", resolve=True)
    assert result.changed_production and result.outputs.resolved[0].migration == INIT
    verified = result.outputs.resolved[0].verified_objects
    assert {"table users", "table organizations", "index users.users_email_key", "extension vector",
            "constraint users.users_orgId_fkey", "type Role", "column users.orgId"} <= set(verified)
    row = sql(url, "select finished_at is not null, rolled_back_at, applied_steps_count, logs from _prisma_migrations")
    assert row[0][:3] == (True, None, 1) and "marked applied after verifying" in row[0][3]
    assert result.outputs.failed == []


def test_a_resolve_is_refused_and_names_what_is_missing_when_the_migration_only_partly_ran(new_db, tmp_path):
    url = new_db("p3018_partial")
    migrations = _prisma_project(tmp_path)
    sql(url, 'CREATE EXTENSION IF NOT EXISTS "vector"; CREATE TYPE "Role" AS ENUM (\'USER\', \'ADMIN\'); '
             'CREATE TABLE "users" ("id" TEXT NOT NULL, "email" TEXT NOT NULL, "role" "Role" NOT NULL DEFAULT \'USER\','
             ' CONSTRAINT "users_pkey" PRIMARY KEY ("id"))')
    _failed_row(url, migrations)
    with pytest.raises(StageFailed) as failed:
        _runner(tmp_path, url).run("status", DbMigrationStatus, database="main", tool="prisma", resolve=True)
    message = str(failed.value)
    assert "refusing to mark" in message
    for missing in ("table organizations", "index users.users_email_key", "column users.orgId",
                    "constraint users.users_orgId_fkey"):
        assert missing in message
    assert sql(url, "select finished_at from _prisma_migrations") == [(None,)]


# -- 002: fails only on production data ----------------------------------------------------------------------------

def _alembic(project, url, *args):
    subprocess.run([sys.executable, "-m", "alembic", *args], cwd=project.root, check=True, capture_output=True,
                   env={**BASE_ENV, "DATABASE_URL": url})


def _users_at_0001(project, url, *, duplicates: bool) -> None:
    project.revision("0001", None, 'op.create_table("users", sa.Column("id", sa.Integer, primary_key=True), '
                                   'sa.Column("email", sa.Text), sa.Column("name", sa.Text))', 'op.drop_table("users")')
    _alembic(project, url, "upgrade", "0001")
    email = "case when g % 50 = 0 then 'dup@x.test' else 'u' || g end" if duplicates else "'u' || g"
    sql(url, f"insert into users select g, {email}, 'n' || g from generate_series(1, 500) g")


def _pipeline_until_dry_run(project, url, command=None):
    runner = _runner(project.root, url)
    runner.run("backup", DbBackup, database="main")
    runner.run("dry", DbDryRun, database="main", command=command or project.upgrade)
    return runner


def test_a_unique_index_over_production_duplicates_only_warns_in_lint_and_fails_the_dry_run(
        alembic_project, new_db):
    url = new_db("dups")
    _users_at_0001(alembic_project, url, duplicates=True)
    alembic_project.revision("0002", "0001", 'op.create_index("users_email_key", "users", ["email"], unique=True)')
    runner = _runner(alembic_project.root, url)
    lint = runner.run("lint", DbLint, database="main", tool="alembic")
    assert any("unique" in f.rule and f.severity == "warning" for f in lint.outputs.findings)
    with pytest.raises(StageFailed) as failed:
        _pipeline_until_dry_run(alembic_project, url)
    assert 'could not create unique index "users_email_key"' in str(failed.value)
    assert sql(url, "select version_num from alembic_version") == [("0001",)]


def test_not_null_without_default_on_an_existing_table_is_a_lint_error_unless_ignored_with_a_reason(
        alembic_project, new_db):
    url = new_db("notnull")
    _users_at_0001(alembic_project, url, duplicates=False)
    alembic_project.revision("0002", "0001", 'op.add_column("users", sa.Column("tenant", sa.Text, nullable=False))')
    runner = _runner(alembic_project.root, url)
    with pytest.raises(StageFailed, match="not-null-without-default"):
        runner.run("lint", DbLint, database="main", tool="alembic", squawk=False)
    ignored = runner.run("lint", DbLint, database="main", tool="alembic", squawk=False,
                         ignore=[{"rule": "not-null-without-default", "migration": "000*",
                                  "reason": "users is empty in every environment"}])
    assert [f.ignored_because for f in ignored.outputs.findings if f.rule == "not-null-without-default"] \
        == ["users is empty in every environment"]
    with pytest.raises(ValidationError):
        DbLint.Params(database="main", ignore=[{"rule": "not-null-without-default", "migration": "0002"}])


# -- 004: monkey-patched op.* --------------------------------------------------------------------------------------

MONKEYPATCH = '''
def _table_exists(name):
    return op.get_bind().execute(sa.text("select to_regclass(:n)"), {"n": name}).scalar() is not None


_create_unique_constraint = op.create_unique_constraint


def _safe_create_unique_constraint(name, table, columns, **kw):
    if _table_exists(table):
        try:
            _create_unique_constraint(name, table, columns, **kw)
        except Exception:
            pass


def _safe_create_index(name, table, columns, **kw):
    if _table_exists(table):
        op.f(name)
'''


def _monkeypatched(project, url) -> None:
    _users_at_0001(project, url, duplicates=True)
    project.revision("0002", "0001", """
        op.create_unique_constraint = _safe_create_unique_constraint
        setattr(op, "create_index", _safe_create_index)
        op.create_unique_constraint("uq_users_email", "users", ["email"])
        op.create_index("ix_users_name", "users", ["name"])
    """, header=MONKEYPATCH)


def test_monkey_patched_op_helpers_are_a_lint_error(alembic_project, new_db):
    url = new_db("monkey_lint")
    _monkeypatched(alembic_project, url)
    with pytest.raises(StageFailed) as linted:
        _runner(alembic_project.root, url).run("lint", DbLint, database="main", tool="alembic", squawk=False)
    assert "alembic-op-monkeypatch" in str(linted.value) and "0002.py" in str(linted.value)


def test_the_monkey_patch_cascade_is_caught_by_the_dry_run_stage_before_production(alembic_project, new_db):
    url = new_db("monkey_dry")
    _monkeypatched(alembic_project, url)
    with pytest.raises(StageFailed) as failed:
        _pipeline_until_dry_run(alembic_project, url)
    assert "current transaction is aborted" in str(failed.value)
    assert sql(url, "select version_num from alembic_version") == [("0001",)]


# -- heads and unknown revisions -----------------------------------------------------------------------------------

def test_status_blocks_on_multiple_alembic_heads_and_names_the_merge(alembic_project, new_db):
    url = new_db("heads")
    _users_at_0001(alembic_project, url, duplicates=False)
    alembic_project.revision("0002a", "0001", 'op.add_column("users", sa.Column("a", sa.Text))')
    alembic_project.revision("0002b", "0001", 'op.add_column("users", sa.Column("b", sa.Text))')
    with pytest.raises(StageFailed) as failed:
        _runner(alembic_project.root, url).run("status", DbMigrationStatus, database="main", tool="alembic")
    assert "multiple-heads" in str(failed.value) and "0002a" in str(failed.value) and "0002b" in str(failed.value)
    assert "alembic merge heads" in str(failed.value)


def test_status_blocks_when_the_database_is_at_a_revision_the_repository_does_not_know(alembic_project, new_db):
    url = new_db("unknown_rev")
    _users_at_0001(alembic_project, url, duplicates=False)
    sql(url, "update alembic_version set version_num = 'f00dcafe'")
    with pytest.raises(StageFailed, match="unknown-db-revision.*f00dcafe"):
        _runner(alembic_project.root, url).run("status", DbMigrationStatus, database="main", tool="alembic")


def test_status_reports_pending_revisions_without_blocking(alembic_project, new_db):
    url = new_db("pending")
    _users_at_0001(alembic_project, url, duplicates=False)
    alembic_project.revision("0002", "0001", 'op.add_column("users", sa.Column("bio", sa.Text))')
    result = _runner(alembic_project.root, url).run("status", DbMigrationStatus, database="main", tool="alembic")
    assert result.outputs.current == ["0001"] and result.outputs.pending == ["0002"]


# -- the whole chain through the stages ----------------------------------------------------------------------------

def test_backup_dry_run_and_migrate_stages_migrate_production_once_with_a_verified_backup(alembic_project, new_db):
    url = new_db("chain")
    _users_at_0001(alembic_project, url, duplicates=False)
    alembic_project.revision("0002", "0001", 'op.add_column("users", sa.Column("bio", sa.Text))',
                             'op.drop_column("users", "bio")')
    runner = _pipeline_until_dry_run(alembic_project, url)
    assert runner.outputs["backup"].verified is True
    migrated = runner.run("migrate", DbMigrate, database="main", command=alembic_project.upgrade)
    assert migrated.changed_production
    assert (migrated.outputs.revision_before, migrated.outputs.revision_after) == ("0001", "0002")
    assert "password" not in str(runner.outputs) and sql(url, "select version_num from alembic_version") == [("0002",)]
    comp = runner.compensate("migrate", DbMigrate, migrated.outputs, database="main",
                             command=alembic_project.upgrade, on_rollback="downgrade",
                             downgrade_command=alembic_project.downgrade)
    assert comp.action == "downgraded" and comp.verified
    assert sql(url, "select version_num from alembic_version") == [("0001",)]


# -- each pending migration's phase (expand / contract) --------------------------------------------------------------

def test_lint_names_each_pending_alembic_migrations_phase_from_the_sql_it_will_run(alembic_project, new_db):
    url = new_db("phases")
    _users_at_0001(alembic_project, url, duplicates=False)
    alembic_project.revision("0002", "0001", 'op.add_column("users", sa.Column("nick", sa.Text))')
    alembic_project.revision("0003", "0002", 'op.drop_column("users", "nick")',
                             header="# deploypipe: expand (reason: no release ever read users.nick)")
    alembic_project.revision("0004", "0003", 'op.drop_column("users", "name")')
    result = _runner(alembic_project.root, url).run("lint", DbLint, database="main", tool="alembic", squawk=False)
    assert result.outputs.phases == {"0002": "expand", "0003": "expand (override: no release ever read users.nick)",
                                     "0004": "contract: drop-column users.name (line 2)"}
    assert result.summary.endswith("; contract: 0004")


def test_a_phase_override_without_a_reason_is_a_lint_error(alembic_project, new_db):
    url = new_db("phase_noreason")
    _users_at_0001(alembic_project, url, duplicates=False)
    alembic_project.revision("0002", "0001", 'op.drop_column("users", "name")', header="# deploypipe: expand")
    with pytest.raises(StageFailed, match="phase-override-without-reason"):
        _runner(alembic_project.root, url).run("lint", DbLint, database="main", tool="alembic", squawk=False)
