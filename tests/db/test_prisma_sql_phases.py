"""Two phases for Prisma and plain SQL files on real PostgreSQL: deploypipe applies the expand phase itself
(Prisma's rows as ``prisma migrate deploy`` writes them; SQL files with deploypipe's ledger), the contract phase
applies only the rest; a failed expand is recorded as Prisma records it and blocks before production changed."""

from __future__ import annotations

import hashlib
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
from dbfixtures import sql
from test_seed_incidents import _runner

from deploypipe.db.apply import apply_command
from deploypipe.db.prisma_apply import apply_prisma
from deploypipe.db.script_error import ApplyError
from deploypipe.db.sql_ledger import apply_sql
from deploypipe.errors import StageFailed
from deploypipe.stages.db import DbBackup, DbDryRun
from deploypipe.stages.db_checks import DbLint, DbMigrationStatus
from deploypipe.stages.db_migrate import DbMigrate

INIT = "20240101000000_init"
ADD_NICK = "20240102000000_add_nick"
DROP_NAME = "20240103000000_drop_name"

#: ``prisma migrate deploy`` for the contract phase, where the Prisma CLI is not installed: Prisma's own rule
#: (apply_migrations.rs): refuse on a failed row (P3009); apply, in name order, each migration.sql without a row
#: that is not rolled back; print what it applied. The test asserts it applies only what the expand phase left.
PRISMA_DEPLOY = '''
import os, pathlib, sys, uuid, hashlib, psycopg
directory = pathlib.Path(sys.argv[1])
with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
    rows = conn.execute("select migration_name, finished_at, rolled_back_at from _prisma_migrations").fetchall()
    if any(f is None and r is None for _, f, r in rows):
        sys.exit("Error: P3009 migrate found failed migrations")
    recorded = {name for name, _, rolled_back in rows if rolled_back is None}
    for path in sorted(directory.glob("*/migration.sql")):
        if path.parent.name in recorded:
            continue
        script = path.read_bytes()
        conn.execute("insert into _prisma_migrations (id, checksum, migration_name) values (%s, %s, %s)",
                     (str(uuid.uuid4()), hashlib.sha256(script).hexdigest(), path.parent.name))
        conn.execute(script)
        conn.execute("update _prisma_migrations set applied_steps_count = 1, finished_at = now() "
                     "where migration_name = %s", (path.parent.name,))
        print("Applying migration", path.parent.name)
'''


def _prisma(root: Path, migrations: dict[str, str]) -> Path:
    directory = root / "prisma" / "migrations"
    for name, text in migrations.items():
        (directory / name).mkdir(parents=True, exist_ok=True)
        (directory / name / "migration.sql").write_text(text, encoding="utf-8")
    return directory


def _prisma_at_init(root: Path, url: str) -> Path:
    directory = _prisma(root, {INIT: 'CREATE TABLE "users" ("id" SERIAL NOT NULL, "email" TEXT, "name" TEXT,\n'
                                     '    CONSTRAINT "users_pkey" PRIMARY KEY ("id"));\n'})
    with psycopg.connect(url, autocommit=True) as conn:
        apply_prisma(conn, directory, say=lambda line: None)
    sql(url, "insert into users (email, name) select 'u' || g, 'n' || g from generate_series(1, 200) g")
    return directory


def _release(runner, url: str, params: dict, *, dry_command: str) -> None:
    """db.lint, db.backup and db.dry_run of a release whose db.migrate has ``params`` (phase expand)."""
    runner.run("lint", DbLint, database="main", tool=params["tool"], squawk=False)
    runner.run("backup", DbBackup, database="main")
    runner.run("dry", DbDryRun, database="main", command=dry_command, later={"migrate": (DbMigrate, params)})


def _rows(url: str) -> list[dict]:
    with psycopg.connect(url, row_factory=psycopg.rows.dict_row) as conn:
        return list(conn.execute("select * from _prisma_migrations order by started_at"))


def test_prisma_expand_is_recorded_as_prisma_records_it_and_the_contract_deploy_applies_only_the_rest(tmp_path, new_db):
    url = new_db("prisma_phases")
    directory = _prisma_at_init(tmp_path, url)
    _prisma(tmp_path, {ADD_NICK: 'ALTER TABLE "users" ADD COLUMN "nick" TEXT;\r\n',  # CRLF: checksummed as written
                       DROP_NAME: 'ALTER TABLE "users" DROP COLUMN "name";\n'})
    deploy = tmp_path / "prisma_deploy.py"
    deploy.write_text(PRISMA_DEPLOY, encoding="utf-8")
    contract_command = f"{sys.executable} {deploy} prisma/migrations"
    expand = dict(database="main", tool="prisma", phase="expand")
    runner = _runner(tmp_path, url)
    _release(runner, url, expand, dry_command=contract_command)
    assert runner.outputs["lint"].phases == {ADD_NICK: "expand", DROP_NAME: "contract: drop-column users.name (line 1)"}
    assert runner.outputs["dry"].run.revision_after == DROP_NAME

    result = runner.run("migrate", DbMigrate, **expand)
    assert result.outputs.migrations == [ADD_NICK] and result.outputs.waiting == [DROP_NAME]
    assert result.changed_production and result.outputs.revision_after == ADD_NICK
    rows = _rows(url)
    assert [r["migration_name"] for r in rows] == [INIT, ADD_NICK]
    row = rows[1]  # what record_migration_started / _successful_step / _finished leave (sql_migration_persistence.rs)
    assert uuid.UUID(row["id"]).version == 4 and len(row["id"]) == 36
    assert row["checksum"] == hashlib.sha256((directory / ADD_NICK / "migration.sql").read_bytes()).hexdigest()
    assert row["started_at"] <= row["finished_at"] and row["started_at"].utcoffset().total_seconds() == 0
    assert (row["logs"], row["rolled_back_at"], row["applied_steps_count"]) == (None, None, 1)
    assert sql(url, "select count(name), count(*) from users") == [(200, 200)]  # name is still there for the live code

    contract = runner.run("contract", DbMigrate, database="main", tool="prisma", phase="contract",
                          command=contract_command)
    assert contract.outputs.migrations == [DROP_NAME]
    assert "Applying migration" in contract.outputs.run.output_tail
    assert contract.outputs.run.output_tail.count("Applying migration") == 1  # ADD_NICK was seen as applied
    assert [r["migration_name"] for r in _rows(url)] == [INIT, ADD_NICK, DROP_NAME]
    assert contract.outputs.run.schema_changes == {"columns_removed": ["public.users.name text"]}


#: create_migrations_table of prisma-engines' PostgreSQL flavour (schema-engine/connectors/sql-schema-connector/
#: src/flavour/postgres.rs), as Prisma creates the table.
PRISMA_TABLE = """CREATE TABLE _prisma_migrations (
    id                      VARCHAR(36) PRIMARY KEY NOT NULL,
    checksum                VARCHAR(64) NOT NULL,
    finished_at             TIMESTAMPTZ,
    migration_name          VARCHAR(255) NOT NULL,
    logs                    TEXT,
    rolled_back_at          TIMESTAMPTZ,
    started_at              TIMESTAMPTZ NOT NULL DEFAULT now(),
    applied_steps_count     INTEGER NOT NULL DEFAULT 0
);"""


def test_the_migrations_table_deploypipe_creates_is_prismas(new_db, tmp_path):
    ours, prismas = new_db("ours"), new_db("prismas")
    with psycopg.connect(ours, autocommit=True) as conn:
        apply_prisma(conn, _prisma(tmp_path, {INIT: "CREATE TABLE t (id int);\n"}), say=lambda line: None)
    sql(prismas, PRISMA_TABLE)
    columns = ("select column_name, data_type, character_maximum_length, is_nullable, column_default "
               "from information_schema.columns where table_name = '_prisma_migrations' order by ordinal_position")
    assert sql(ours, columns) == sql(prismas, columns)
    assert [c[0] for c in sql(ours, columns)] == ["id", "checksum", "finished_at", "migration_name", "logs",
                                                  "rolled_back_at", "started_at", "applied_steps_count"]


def test_a_failed_prisma_expand_is_recorded_failed_as_prisma_records_it_and_blocks_before_production_changed(
        tmp_path, new_db):
    url = new_db("prisma_fails")
    _prisma_at_init(tmp_path, url)
    _prisma(tmp_path, {ADD_NICK: 'ALTER TABLE "users" ADD COLUMN "nick" TEXT;\n'
                                 'CREATE UNIQUE INDEX "users_email_key" ON "users"("email");\n',
                       DROP_NAME: 'ALTER TABLE "users" DROP COLUMN "name";\n'})
    expand = dict(database="main", tool="prisma", phase="expand")
    runner = _runner(tmp_path, url)
    _release(runner, url, expand, dry_command=apply_command("prisma", tmp_path / "prisma" / "migrations"))
    sql(url, "insert into users (email) values ('u1')")  # written since the backup: a duplicate email
    with pytest.raises(StageFailed) as failed:
        runner.run("migrate", DbMigrate, **expand)
    assert failed.value.production_changed is False
    message = str(failed.value)
    assert 'could not create unique index "users_email_key"' in message
    assert "npx prisma migrate resolve --rolled-back" in message
    row = _rows(url)[-1]
    assert row["migration_name"] == ADD_NICK
    assert (row["finished_at"], row["rolled_back_at"], row["applied_steps_count"]) == (None, None, 0)
    assert row["logs"].startswith("A migration failed to apply. New migrations cannot be applied before the error is "
                                  "recovered from.")
    assert f"Migration name: {ADD_NICK}\n\nDatabase error code: 23505\n\nDatabase error:\nERROR: could not create " \
           'unique index "users_email_key"\nDETAIL: Key (email)=(u1) is duplicated.' in row["logs"]
    assert sql(url, "select count(*) from information_schema.columns where column_name = 'nick'") == [(0,)]
    status = _runner(tmp_path, url)
    with pytest.raises(StageFailed, match=r"prisma-failed-migration.*did NOT finish: missing column users.nick"):
        status.run("status", DbMigrationStatus, database="main", tool="prisma")


def _sql_files(root: Path, files: dict[str, str]) -> Path:
    directory = root / "migrations"
    directory.mkdir(exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text, encoding="utf-8")
    return directory


def test_sql_files_apply_in_two_phases_with_deploypipes_ledger(tmp_path, new_db):
    url = new_db("sql_phases")
    directory = _sql_files(tmp_path, {"001_users.sql": "CREATE TABLE users (id int PRIMARY KEY, name text);\n"})
    with psycopg.connect(url, autocommit=True) as conn:
        assert apply_sql(conn, directory, say=lambda line: None) == ["001_users.sql"]
    sql(url, "insert into users select g, 'n' || g from generate_series(1, 100) g")
    _sql_files(tmp_path, {"002_nick.sql": "ALTER TABLE users ADD COLUMN nick text;\n",
                          "003_drop_name.sql": "ALTER TABLE users DROP COLUMN name;\n"})
    expand = dict(database="main", tool="sql", phase="expand")
    runner = _runner(tmp_path, url)
    _release(runner, url, expand, dry_command=apply_command("sql", directory))
    assert runner.outputs["lint"].migrations == ["002_nick.sql", "003_drop_name.sql"]  # 001 is in the ledger

    result = runner.run("migrate", DbMigrate, **expand)
    assert result.outputs.migrations == ["002_nick.sql"] and result.outputs.revision_after == "002_nick.sql"
    assert sql(url, "select count(name) from users") == [(100,)]
    contract = runner.run("contract", DbMigrate, database="main", tool="sql", phase="contract")
    assert contract.outputs.migrations == ["003_drop_name.sql"]
    assert contract.outputs.revision_after == "003_drop_name.sql"
    ledger = sql(url, "select file_name, sha256 from deploypipe_sql_migrations order by 1")
    assert ledger == [(p.name, hashlib.sha256(p.read_bytes()).hexdigest()) for p in sorted(directory.glob("*.sql"))]

    (directory / "002_nick.sql").write_text("ALTER TABLE users ADD COLUMN nick varchar(20);\n", encoding="utf-8")
    status = _runner(tmp_path, url).run("status", DbMigrationStatus, database="main", tool="sql")
    assert status.outputs.applied == ["001_users.sql", "002_nick.sql", "003_drop_name.sql"]
    assert status.outputs.pending_count == 0
    assert [(f.rule, f.severity, f.subject) for f in status.outputs.findings] == [
        ("sql-checksum-mismatch", "warning", "migration 002_nick.sql")]


def test_a_failed_sql_file_rolls_back_with_its_ledger_row_and_names_its_statement(tmp_path, new_db):
    url = new_db("sql_fails")
    directory = _sql_files(tmp_path, {"001_a.sql": "CREATE TABLE a (id int);\n",
                                      "002_b.sql": "CREATE TABLE b (id int);\nINSERT INTO b SELECT nope FROM a;\n"})
    with psycopg.connect(url, autocommit=True) as conn, pytest.raises(ApplyError) as failed:
        apply_sql(conn, directory, say=lambda line: None)
    assert failed.value.message == 'migration 002_b.sql failed: column "nope" does not exist'
    assert failed.value.statement == "INSERT INTO b SELECT nope FROM a"
    assert sql(url, "select file_name from deploypipe_sql_migrations") == [("001_a.sql",)]
    assert sql(url, "select to_regclass('b') is null") == [(True,)]


def test_auto_keeps_an_unproven_sql_expand_and_says_the_rollback_is_unverified(tmp_path, new_db):
    url = new_db("sql_auto")
    directory = _sql_files(tmp_path, {"001_users.sql": "CREATE TABLE users (id int PRIMARY KEY);\n",
                                      "002_nick.sql": "ALTER TABLE users ADD COLUMN nick text;\n"})
    expand = dict(database="main", tool="sql", phase="expand")
    runner = _runner(tmp_path, url)
    _release(runner, url, expand, dry_command=apply_command("sql", directory))
    result = runner.run("migrate", DbMigrate, **expand)
    undo = runner.compensate("migrate", DbMigrate, result.outputs, **expand)
    assert undo.action == "left_schema" and undo.verified is False
    assert "the dry run did not prove the live release serves its requests" in undo.summary
    assert "sql migrations have no downgrade and a restore is never automatic" in undo.summary
    assert sql(url, "select count(*) from deploypipe_sql_migrations") == [(2,)]  # nothing undone


def test_through_a_migration_the_directory_lacks_is_refused_before_anything_is_created(tmp_path, new_db):
    url = new_db("through_missing")
    prisma_dir = _prisma(tmp_path / "p", {INIT: "CREATE TABLE t (id int);\n"})
    sql_dir = _sql_files(tmp_path, {"001_t.sql": "CREATE TABLE t (id int);\n"})
    with psycopg.connect(url, autocommit=True) as conn:
        for apply, directory in ((apply_prisma, prisma_dir), (apply_sql, sql_dir)):
            with pytest.raises(ApplyError, match=f"migration nope is not in {directory}"):
                apply(conn, directory, through="nope", say=lambda line: None)
    assert sql(url, "select count(*) from pg_class where relkind = 'r' and relnamespace = 'public'::regnamespace") \
        == [(0,)]
