"""The db stages with a hand-built StageContext (real PostgreSQL, real Alembic): one restore serves the backup's
verification and the dry run; db.migrate's compensation."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from dbfixtures import StageRunner, sql

from deploypipe.stages.db import DbBackup, DbDryRun
from deploypipe.stages.db_migrate import DbMigrate

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
    runner.run("backup", DbBackup, database="main",
               later={"dry": (DbDryRun, {"database": "main", "command": project.upgrade})})
    staging_dir = _held_staging_dir(runner)
    runner.run("dry", DbDryRun, database="main", command=project.upgrade)
    migrated = runner.run("migrate", DbMigrate, database="main", command=project.upgrade)
    sql(url, "delete from users where id > 5")  # damage done after the migration
    return runner, migrated.outputs, staging_dir


def _held_staging_dir(runner: StageRunner) -> Path:
    """Where the copy db.backup holds for the dry run keeps its server's files (the copy stays held)."""
    copy = runner.resources.take("verified-copy:main")
    runner.resources.hold("verified-copy:main", copy)
    assert copy is not None and copy.staging.directory is not None and copy.staging.directory.exists()
    return copy.staging.directory


def test_the_dry_run_migrates_the_copy_the_backup_was_verified_on(alembic_project, new_db):
    url = new_db("stage_reuse")
    runner, _, staging_dir = _migrated(alembic_project, url)
    backup, dry = runner.outputs["backup"], runner.outputs["dry"]
    assert backup.verified and backup.verified_on == "staging copy"
    assert dry.reused_copy and dry.restore_s == 0.0 and dry.backup_id == backup.backup_id
    assert dry.row_counts["public.users"] == 20 and dry.run.revision_after == "0002"
    assert [e["kept_for_dry_run"] for e in runner.events if e["event"] == "backup_verified"] == [True]
    assert runner.resources.take("verified-copy:main") is None and not staging_dir.exists()


def test_a_pipeline_without_a_dry_run_still_verifies_its_backup_and_keeps_no_copy(new_db, tmp_path):
    url = new_db("stage_alone")
    sql(url, "create table t (id int primary key); insert into t select generate_series(1, 30)")
    runner = StageRunner(root=tmp_path, databases={"main": url}, env=BASE_ENV)
    outputs = runner.run("backup", DbBackup, database="main").outputs
    assert outputs.verified and outputs.row_counts == {"public.t": 30}
    assert {c["check"]: c["ok"] for c in outputs.checks} == {
        "restore": True, "sha256": True, "pg_restore_list": True, "post_data": True, "row_counts": True,
        "table_hashes": True}
    assert [e["kept_for_dry_run"] for e in runner.events if e["event"] == "backup_verified"] == [False]
    assert runner.resources.take("verified-copy:main") is None


def test_a_dry_run_without_the_backup_s_copy_restores_the_backup_itself(alembic_project, new_db):
    url = new_db("stage_resume")
    alembic_project.revision("0001", None, 'op.create_table("users", sa.Column("id", sa.Integer, '
                                           'primary_key=True))')
    runner = StageRunner(root=alembic_project.root, databases={"main": url}, env=BASE_ENV)
    runner.run("backup", DbBackup, database="main")  # no later dry run declared: as when a run is resumed
    dry = runner.run("dry", DbDryRun, database="main", command=alembic_project.upgrade).outputs
    assert not dry.reused_copy and dry.ok and dry.run.revision_after == "0001"


def test_restore_compensation_is_refused_without_confirmation(alembic_project, new_db):
    url = new_db("stage_refuse")
    runner, outputs, _ = _migrated(alembic_project, url)
    comp = runner.compensate("migrate", DbMigrate, outputs, database="main", command=alembic_project.upgrade,
                             on_rollback="restore")
    assert comp.action == "restore_refused" and not comp.verified
    assert sql(url, "select count(*) from users") == [(5,)]


def test_a_confirmed_restore_of_a_migration_that_created_a_table_is_verified(alembic_project, new_db):
    url = new_db("stage_restore")
    runner, outputs, _ = _migrated(alembic_project, url, confirm=lambda question: True)
    comp = runner.compensate("migrate", DbMigrate, outputs, database="main", command=alembic_project.upgrade,
                             on_rollback="restore")
    assert sql(url, "select count(*) from users") == [(20,)]
    assert sql(url, "select version_num from alembic_version") == [("0001",)]
    assert comp.action == "restored" and comp.verified, comp.summary


def test_a_copy_held_for_a_dry_run_that_never_comes_is_removed_when_the_run_closes(new_db, tmp_path):
    url = new_db("stage_interrupted")
    sql(url, "create table t (id int primary key)")
    runner = StageRunner(root=tmp_path, databases={"main": url}, env=BASE_ENV)
    runner.run("backup", DbBackup, database="main", later={"dry": (DbDryRun, {"database": "main", "command": "true"})})
    kept = _held_staging_dir(runner)
    runner.close()  # what the run's `finally` does, also on SIGTERM and Ctrl-C
    assert not kept.exists()
