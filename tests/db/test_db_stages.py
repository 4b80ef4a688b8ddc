"""db.migrate compensation through the stage, with a hand-built StageContext (real PostgreSQL, real Alembic)."""

from __future__ import annotations

import os
import subprocess
import sys

from dbfixtures import StageRunner, sql

from deploypipe.stages.db import DbBackup, DbDryRun, DbMigrate

BASE_ENV = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")}


def _migrated(project, url, *, confirm=lambda question: False):
    project.revision("0001", None, 'op.create_table("users", sa.Column("id", sa.Integer, primary_key=True))',
                     'op.drop_table("users")')
    subprocess.run([sys.executable, "-m", "alembic", "upgrade", "0001"], cwd=project.root, check=True,
                   capture_output=True, env={**BASE_ENV, "DATABASE_URL": url})
    sql(url, "insert into users select generate_series(1, 20)")
    project.revision("0002", "0001", 'op.create_table("teams", sa.Column("id", sa.Integer, primary_key=True))',
                     'op.drop_table("teams")')
    runner = StageRunner(root=project.root, databases={"main": url}, env=BASE_ENV, confirm=confirm)
    runner.run("backup", DbBackup, database="main")
    runner.run("dry", DbDryRun, database="main", command=project.upgrade)
    migrated = runner.run("migrate", DbMigrate, database="main", command=project.upgrade)
    sql(url, "delete from users where id > 5")  # damage done after the migration
    return runner, migrated.outputs


def test_restore_compensation_is_refused_without_confirmation(alembic_project, new_db):
    url = new_db("stage_refuse")
    runner, outputs = _migrated(alembic_project, url)
    comp = runner.compensate("migrate", DbMigrate, outputs, database="main", command=alembic_project.upgrade,
                             on_rollback="restore")
    assert comp.action == "restore_refused" and not comp.verified
    assert sql(url, "select count(*) from users") == [(5,)]


def test_a_confirmed_restore_of_a_migration_that_created_a_table_is_verified(alembic_project, new_db):
    url = new_db("stage_restore")
    runner, outputs = _migrated(alembic_project, url, confirm=lambda question: True)
    comp = runner.compensate("migrate", DbMigrate, outputs, database="main", command=alembic_project.upgrade,
                             on_rollback="restore")
    assert sql(url, "select count(*) from users") == [(20,)]
    assert sql(url, "select version_num from alembic_version") == [("0001",)]
    assert comp.action == "restored" and comp.verified, comp.summary
