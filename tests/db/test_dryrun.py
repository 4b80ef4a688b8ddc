"""Dry runs on a copy of production (real PostgreSQL, real Alembic): the seed incidents stop in staging."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from dbfixtures import sql

from deploypipe.core.embedded_pg import pg_bin
from deploypipe.db.backup import create_backup, load_backup
from deploypipe.db.dryrun import dry_run
from deploypipe.errors import StageFailed

BASE_ENV = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")}

CREATE_USERS = """
op.create_table("users", sa.Column("id", sa.Integer, primary_key=True), sa.Column("email", sa.Text),
                sa.Column("name", sa.Text))
"""


def _alembic(project, url: str, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "alembic", *args], cwd=project.root, check=True, capture_output=True,
                   env={**BASE_ENV, "DATABASE_URL": url})


def _production(project, new_db, *, duplicates: bool) -> str:
    url = new_db("prod")
    project.revision("0001", None, CREATE_USERS, 'op.drop_table("users")')
    _alembic(project, url, "upgrade", "0001")
    emails = "case when g % 100 = 0 then 'dup@x.test' else 'u' || g || '@x.test' end" if duplicates else "'u' || g"
    sql(url, f"insert into users (id, email, name) select g, {emails}, 'n' || g from generate_series(1, 1000) g")
    return url


def _dry(project, url, backup, tmp_path, **kwargs):
    return dry_run(backup=backup, production_url=url, command=kwargs.pop("command", project.upgrade), cwd=project.root,
                   env=BASE_ENV, log_path=tmp_path / "dry.log", **kwargs)


def test_a_good_migration_passes_on_the_copy_and_reports_revision_and_schema_changes(alembic_project, new_db, tmp_path):
    prod = _production(alembic_project, new_db, duplicates=False)
    alembic_project.revision("0002", "0001", 'op.add_column("users", sa.Column("nickname", sa.Text))',
                             'op.drop_column("users", "nickname")')
    backup = create_backup(prod, tmp_path / "b", run_id="r1")
    result = _dry(alembic_project, prod, backup, tmp_path)
    assert result.ok and result.staging == "ephemeral embedded PostgreSQL"
    assert result.run.revision_before == "0001" and result.run.revision_after == "0002"
    assert result.run.schema_changes == {"columns_added": ["public.users.nickname text"]}
    assert result.row_counts["public.users"] == 1000 and result.warnings == []
    assert sql(prod, "select version_num from alembic_version") == [("0001",)]  # production untouched


def test_a_unique_index_over_duplicate_production_rows_fails_the_dry_run_with_the_database_error(
        alembic_project, new_db, tmp_path):
    prod = _production(alembic_project, new_db, duplicates=True)
    alembic_project.revision("0002", "0001", 'op.create_index("users_email_key", "users", ["email"], unique=True)')
    backup = create_backup(prod, tmp_path / "b", run_id="r1")
    with pytest.raises(StageFailed) as failed:
        _dry(alembic_project, prod, backup, tmp_path)
    message = str(failed.value)
    assert 'could not create unique index "users_email_key"' in message
    assert "failed statement: CREATE UNIQUE INDEX users_email_key ON users (email)" in message
    assert "duplicates" in failed.value.hint
    assert failed.value.outputs.run.revision_after == "0001"
    assert sql(prod, "select version_num from alembic_version") == [("0001",)]


def test_a_pinned_pgvector_version_the_server_lacks_fails_the_dry_run(new_db, tmp_path):
    """Seed 001: CREATE EXTENSION vector WITH VERSION "0.5.1" (P3018 / 22023) with a Prisma-style migration."""
    prod = new_db("prisma_prod")
    sql(prod, 'create table "User" (id serial primary key, email text)')
    migration = tmp_path / "prisma" / "migrations" / "20251017171256_init" / "migration.sql"
    migration.parent.mkdir(parents=True)
    migration.write_text('CREATE EXTENSION IF NOT EXISTS "vector" WITH VERSION "0.5.1";\n'
                         'ALTER TABLE "User" ADD COLUMN "embedding" vector(3);\n')
    command = f'{pg_bin("psql")} -X -v ON_ERROR_STOP=1 -d "$DATABASE_URL" -f {migration}'
    backup = create_backup(prod, tmp_path / "b", run_id="r1")
    with pytest.raises(StageFailed) as failed:
        dry_run(backup=backup, production_url=prod, command=command, cwd=tmp_path, env=BASE_ENV,
                log_path=tmp_path / "dry.log")
    message = str(failed.value)
    assert 'extension "vector" has no installation script nor update path for version "0.5.1"' in message
    assert "pg_available_extension_versions" in failed.value.hint
    assert sql(prod, "select count(*) from pg_extension where extname = 'vector'") == [(0,)]


MONKEYPATCH_HEADER = '''
def _table_exists(name):
    return op.get_bind().execute(sa.text("select to_regclass(:n)"), {"n": name}).scalar() is not None


_create_unique_constraint = op.create_unique_constraint
_create_index = op.create_index


def _safe_create_unique_constraint(name, table, columns, **kw):
    if _table_exists(table):
        try:
            _create_unique_constraint(name, table, columns, **kw)
        except Exception as exc:  # the "safe" wrapper swallows the real error
            print("skipping", name, type(exc).__name__)


def _safe_create_index(name, table, columns, **kw):
    if _table_exists(table):
        _create_index(name, table, columns, **kw)
'''

MONKEYPATCH_UPGRADE = """
op.create_unique_constraint = _safe_create_unique_constraint
op.create_index = _safe_create_index
op.create_unique_constraint("uq_users_email", "users", ["email"])
op.create_index("ix_users_name", "users", ["name"])
"""


def test_monkey_patched_op_helpers_show_the_aborted_transaction_cascade_in_staging(alembic_project, new_db, tmp_path):
    """Seed 004: one swallowed failure, then 'current transaction is aborted' for everything after it."""
    prod = _production(alembic_project, new_db, duplicates=True)
    alembic_project.revision("0002", "0001", MONKEYPATCH_UPGRADE, header=MONKEYPATCH_HEADER)
    backup = create_backup(prod, tmp_path / "b", run_id="r1")
    with pytest.raises(StageFailed) as failed:
        _dry(alembic_project, prod, backup, tmp_path)
    assert "current transaction is aborted" in str(failed.value)
    assert "swallowed" in failed.value.hint and "monkey-patched" in failed.value.hint
    assert "skipping uq_users_email IntegrityError" in Path(tmp_path / "dry.log").read_text()
    assert sql(prod, "select version_num from alembic_version") == [("0001",)]


def test_a_given_staging_database_is_used_and_the_production_database_is_refused_as_staging(
        alembic_project, new_db, tmp_path):
    prod = _production(alembic_project, new_db, duplicates=False)
    alembic_project.revision("0002", "0001", 'op.add_column("users", sa.Column("bio", sa.Text))')
    backup = create_backup(prod, tmp_path / "b", run_id="r1")
    with pytest.raises(StageFailed, match="staging_url points at the production database"):
        _dry(alembic_project, prod, backup, tmp_path, staging_url=prod)
    staging = new_db("staging")
    recorded = load_backup(backup.meta_path)  # what db.dry_run reads: the metadata db.backup wrote beside the dump
    result = _dry(alembic_project, prod, recorded, tmp_path, staging_url=staging)
    assert result.ok and result.run.revision_after == "0002"
    assert sql(staging, "select version_num from alembic_version") == [("0002",)]
    assert sql(prod, "select version_num from alembic_version") == [("0001",)]


LIVE_RELEASE = '''
import os, psycopg
from http.server import BaseHTTPRequestHandler, HTTPServer


class Health(BaseHTTPRequestHandler):
    def do_GET(self):
        try:
            with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
                conn.execute("select id, email, name from users limit 1").fetchall()  # what the live code reads
            code, body = 200, b"ok"
        except Exception as exc:
            code, body = 500, str(exc).encode()
        self.send_response(code)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


HTTPServer((os.environ["HOST"], int(os.environ["PORT"])), Health).serve_forever()
'''


def test_the_live_release_is_checked_against_the_migrated_copy_and_a_contracting_migration_is_caught(
        alembic_project, new_db, tmp_path):
    prod = _production(alembic_project, new_db, duplicates=False)
    (alembic_project.root / "release.py").write_text(LIVE_RELEASE)
    compat = dict(compat_command=f"{sys.executable} release.py", compat_timeout_s=20)
    alembic_project.revision("0002", "0001", 'op.add_column("users", sa.Column("bio", sa.Text))')
    backup = create_backup(prod, tmp_path / "b", run_id="r1")
    expanded = _dry(alembic_project, prod, backup, tmp_path, **compat)
    assert expanded.ok and expanded.compat.ok and expanded.compat.status_code == 200

    alembic_project.revision("0003", "0002", 'op.drop_column("users", "name")')
    with pytest.raises(StageFailed) as failed:
        _dry(alembic_project, prod, backup, tmp_path, **compat)
    assert "live release is not healthy on the migrated schema: health answered 500" in str(failed.value)
    assert "expand" in failed.value.hint
    assert failed.value.outputs.compat.body.startswith('column "name" does not exist')


def test_a_live_release_that_exits_at_start_fails_the_compatibility_check(alembic_project, new_db, tmp_path):
    prod = _production(alembic_project, new_db, duplicates=False)
    alembic_project.revision("0002", "0001", 'op.add_column("users", sa.Column("bio", sa.Text))')
    backup = create_backup(prod, tmp_path / "b", run_id="r1")
    with pytest.raises(StageFailed, match="exited with code 3 before answering; last output: boom"):
        _dry(alembic_project, prod, backup, tmp_path, compat_command="echo boom; exit 3")


def test_a_backup_changed_after_it_was_taken_is_never_restored_into_staging(alembic_project, new_db, tmp_path):
    prod = _production(alembic_project, new_db, duplicates=False)
    alembic_project.revision("0002", "0001", 'op.add_column("users", sa.Column("bio", sa.Text))')
    backup = create_backup(prod, tmp_path / "b", run_id="r1")
    with open(backup.path, "ab") as handle:
        handle.write(b"tampered")
    with pytest.raises(StageFailed, match="does not match its recorded sha256"):
        _dry(alembic_project, prod, backup, tmp_path)
    assert not (tmp_path / "dry.log").exists()  # the migration never ran
