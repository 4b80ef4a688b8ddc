"""The production migration: preconditions, the advisory lock, concurrent pipelines, compensation policies."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from dataclasses import replace

import pytest
from dbfixtures import Sleeps, sql

from deploypipe.db.advisory import Holder, PgAdvisoryLock
from deploypipe.db.backup import create_backup
from deploypipe.db.migrate import (
    BackupEvidence,
    DryRunEvidence,
    compensate_migration,
    lock_name,
    migrate_production,
)
from deploypipe.errors import LockHeldError, StageFailed

BASE_ENV = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")}


def _setup(project, new_db, tmp_path):
    """Production at 0001 with 100 users; 0002 (pending) adds a column and writes an audit row."""
    url = new_db("prod")
    project.revision("0001", None, """
        op.create_table("users", sa.Column("id", sa.Integer, primary_key=True), sa.Column("email", sa.Text))
        op.create_table("audit", sa.Column("id", sa.Integer, primary_key=True), sa.Column("what", sa.Text))
    """, 'op.drop_table("audit")\nop.drop_table("users")')
    subprocess.run([sys.executable, "-m", "alembic", "upgrade", "0001"], cwd=project.root, check=True,
                   capture_output=True, env={**BASE_ENV, "DATABASE_URL": url})
    sql(url, "insert into users select g, 'u' || g from generate_series(1, 100) g")
    project.revision("0002", "0001", """
        op.execute("select pg_sleep(0.3)")
        op.add_column("users", sa.Column("nickname", sa.Text))
        op.execute("insert into audit (what) values ('0002 applied')")
    """, 'op.drop_column("users", "nickname")')
    backup = create_backup(url, tmp_path / "b", run_id="r1")
    backup_out = BackupEvidence(backup_id=backup.id, path=backup.path, verified=True)
    dry_out = DryRunEvidence(ok=True, command=project.upgrade, backup_id=backup.id)
    return url, backup_out, dry_out


def _migrate(project, url, tmp_path, backup, dry, **kwargs):
    return migrate_production(url=url, command=kwargs.pop("command", project.upgrade), cwd=project.root, env=BASE_ENV,
                              log_path=tmp_path / f"migrate-{threading.get_ident()}.log", run_id=kwargs.pop("run_id", "run-a"),
                              backup=backup, dry=dry, **kwargs)


def _revision(url):
    return sql(url, "select version_num from alembic_version")


def test_migrate_refuses_without_a_verified_backup_or_a_successful_dry_run(alembic_project, new_db, tmp_path):
    url, backup, dry = _setup(alembic_project, new_db, tmp_path)
    with pytest.raises(StageFailed, match="this run has no backup"):
        _migrate(alembic_project, url, tmp_path, None, dry)
    with pytest.raises(StageFailed, match="this run has an unverified backup"):
        _migrate(alembic_project, url, tmp_path, replace(backup, verified=False), dry)
    with pytest.raises(StageFailed, match="no successful db.dry_run in this run"):
        _migrate(alembic_project, url, tmp_path, backup, replace(dry, ok=False))
    assert _revision(url) == [("0001",)]


def test_opting_out_of_the_backup_is_allowed_but_recorded_as_a_warning(alembic_project, new_db, tmp_path):
    url, _, dry = _setup(alembic_project, new_db, tmp_path)
    result = _migrate(alembic_project, url, tmp_path, None, dry, require_backup=False)
    assert result.ok and result.revision_before == "0001" and result.revision_after == "0002"
    assert result.warnings == ["migrating production WITHOUT a verified backup (require_backup: false)"]
    assert result.production_changed and _revision(url) == [("0002",)]


def test_a_held_migration_lock_refuses_the_second_pipeline_and_names_the_holder(alembic_project, new_db, tmp_path):
    url, backup, dry = _setup(alembic_project, new_db, tmp_path)
    holder = PgAdvisoryLock(url, lock_name(url), holder=Holder.of_this_process("run-other"))
    holder.acquire()
    sleeps = Sleeps()
    try:
        with pytest.raises(LockHeldError) as held:
            _migrate(alembic_project, url, tmp_path, backup, dry, lock_wait_s=3, sleep=sleeps, clock=sleeps.clock)
    finally:
        holder.release()
    assert "migration lock" in str(held.value) and "run run-other by " in str(held.value)
    assert "since " in str(held.value) and held.value.holder["run_id"] == "run-other"
    assert sum(sleeps.waits) == pytest.approx(3)
    assert _revision(url) == [("0001",)]


def test_two_pipelines_migrating_at_once_migrate_the_database_exactly_once(alembic_project, new_db, tmp_path):
    url, backup, dry = _setup(alembic_project, new_db, tmp_path)
    results, errors = [], []

    def pipeline(run_id: str) -> None:
        try:
            results.append(_migrate(alembic_project, url, tmp_path, backup, dry, run_id=run_id, lock_wait_s=60,
                                    poll_s=0.05))
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=pipeline, args=(f"run-{i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert sorted((r.revision_before, r.revision_after) for r in results) == [("0001", "0002"), ("0002", "0002")]
    assert sql(url, "select what from audit") == [("0002 applied",)]
    assert _revision(url) == [("0002",)]


def _partial_failure(project, new_db, tmp_path):
    """0002 applies, then 0003 fails in its own transaction: production changed before the failure."""
    url, backup, dry = _setup(project, new_db, tmp_path)
    project.revision("0003", "0002", 'op.execute("select * from no_such_table")')
    command = f"{sys.executable} -m alembic upgrade 0002 && {project.upgrade}"
    with pytest.raises(StageFailed) as failed:
        _migrate(project, url, tmp_path, backup, replace(dry, command=command), command=command)
    return url, failed.value


def test_a_failure_after_production_changed_is_flagged_and_downgrade_restores_the_recorded_revision(
        alembic_project, new_db, tmp_path):
    url, failure = _partial_failure(alembic_project, new_db, tmp_path)
    assert failure.production_changed is True
    assert 'relation "no_such_table" does not exist' in str(failure) and "CHANGED" in str(failure)
    outputs = failure.outputs
    assert (outputs.revision_before, outputs.revision_after) == ("0001", "0002")
    comp = compensate_migration(outputs, policy="downgrade", url=url, cwd=alembic_project.root, env=BASE_ENV,
                                log_path=tmp_path / "down.log", run_id="run-a",
                                downgrade_command=alembic_project.downgrade)
    assert comp.action == "downgraded" and comp.verified, comp.summary
    assert _revision(url) == [("0001",)]
    assert "nickname" not in [c for (c,) in sql(url, "select column_name from information_schema.columns "
                                                     "where table_name = 'users'")]


def test_leave_policy_keeps_the_schema_and_says_so(alembic_project, new_db, tmp_path):
    url, failure = _partial_failure(alembic_project, new_db, tmp_path)
    comp = compensate_migration(failure.outputs, policy="leave", url=url, cwd=alembic_project.root,
                                env=BASE_ENV, log_path=tmp_path / "x.log", run_id="run-a")
    assert comp.action == "left_schema" and comp.verified and "expand/contract" in comp.summary
    assert _revision(url) == [("0002",)]


def test_restore_policy_refuses_without_confirmation_and_restores_the_backup_when_confirmed(
        alembic_project, new_db, tmp_path):
    url, failure = _partial_failure(alembic_project, new_db, tmp_path)
    outputs = failure.outputs
    questions: list[str] = []
    kwargs = dict(policy="restore", url=url, cwd=alembic_project.root, env=BASE_ENV, log_path=tmp_path / "x.log",
                  run_id="run-a")
    refused = compensate_migration(outputs, confirm=lambda q: questions.append(q) or False, **kwargs)
    assert refused.action == "restore_refused" and not refused.verified
    assert "not confirmed" in refused.summary and "LOST" in questions[0]
    assert _revision(url) == [("0002",)]
    sql(url, "insert into users (id, email) values (1000, 'written after the backup')")
    restored = compensate_migration(outputs, confirm=lambda q: True, **kwargs)
    assert restored.action == "restored" and restored.verified, restored.summary
    assert _revision(url) == [("0001",)]
    assert sql(url, "select count(*) from users") == [(100,)]
    ci = compensate_migration(outputs, restore_confirmed=True, **kwargs)  # CI: declared and pre-confirmed
    assert ci.action == "restored" and ci.verified


def test_a_migration_that_rolled_back_entirely_needs_no_compensation(alembic_project, new_db, tmp_path):
    url, backup, dry = _setup(alembic_project, new_db, tmp_path)
    alembic_project.revision("0003", "0002", 'op.execute("select * from no_such_table")')
    with pytest.raises(StageFailed) as failed:
        _migrate(alembic_project, url, tmp_path, backup, dry)  # 0002 and 0003 in one transaction
    assert failed.value.production_changed is False and "unchanged" in str(failed.value)
    comp = compensate_migration(failed.value.outputs, policy="downgrade", url=url,
                                cwd=alembic_project.root, env=BASE_ENV, log_path=tmp_path / "x.log", run_id="r")
    assert comp.action == "nothing_to_do" and comp.verified
