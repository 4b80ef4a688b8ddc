"""Run a migration command against a database with timeouts, and describe what it changed.

Used for the staging dry run and for the production migration: the command
(``alembic upgrade head``, ``npx prisma migrate deploy``, anything) gets
``DATABASE_URL`` and ``PGOPTIONS`` with ``lock_timeout``/``statement_timeout``;
its output is streamed (redacted) to a log; a failure is reported with the
database's own error and the statement that failed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import psycopg

from deploypipe.core.processes import run_command, tail
from deploypipe.db.pg import schema_snapshot, table_exists

__all__ = ["MigrationRun", "current_revision", "failure_detail", "run_migration", "schema_diff"]


@dataclass
class MigrationRun:
    ok: bool
    exit_code: int | None
    duration_s: float
    output_tail: str
    log: str
    revision_before: str | None
    revision_after: str | None
    schema_changes: dict[str, list[str]] = field(default_factory=dict)
    error: str = ""
    statement: str = ""


def current_revision(conn: psycopg.Connection) -> str | None:
    """The schema's migration revision: Alembic's version_num(s), else Prisma's newest finished migration, else the
    last file in deploypipe's ledger of SQL files (deploypipe.db.sql_ledger)."""
    if table_exists(conn, "alembic_version"):
        revs = [r[0] for r in conn.execute("select version_num from alembic_version order by 1")]
        return ",".join(revs) or None
    if table_exists(conn, "_prisma_migrations"):
        row = conn.execute("select migration_name from _prisma_migrations where finished_at is not null and "
                           "rolled_back_at is null order by finished_at desc limit 1").fetchone()
        return row[0] if row else None
    if table_exists(conn, "deploypipe_sql_migrations"):
        row = conn.execute("select max(file_name) from deploypipe_sql_migrations").fetchone()
        return row[0] if row else None
    return None


def schema_diff(before: Mapping[str, list[str]], after: Mapping[str, list[str]]) -> dict[str, list[str]]:
    changes: dict[str, list[str]] = {"tables_added": sorted(set(after) - set(before)),
                                     "tables_removed": sorted(set(before) - set(after)), "columns_added": [],
                                     "columns_removed": []}
    for table in set(before) & set(after):
        changes["columns_added"] += [f"{table}.{c}" for c in after[table] if c not in before[table]]
        changes["columns_removed"] += [f"{table}.{c}" for c in before[table] if c not in after[table]]
    return {k: sorted(v) for k, v in changes.items() if v}


_SQL = re.compile(r"\[SQL: (?P<sql>.+?)\]", re.S)
_ERRORS = (re.compile(r"\(psycopg\.errors\.\w+\) (?P<msg>.+)$", re.M),  # SQLAlchemy + psycopg (Alembic)
           re.compile(r"^\s*(?:ERROR|FATAL):\s+(?P<msg>.+)$", re.M),  # psql, Prisma's "Database error"
           re.compile(r"^\w+(?:\.\w+)*(?:Error|Exception): (?P<msg>.+)$", re.M))  # any Python exception line


def failure_detail(output: str) -> tuple[str, str]:
    """(error, failing statement) from a migration tool's output (SQLAlchemy/psycopg, psql, Prisma)."""
    error = next((m["msg"].strip() for pattern in _ERRORS for m in [pattern.search(output)] if m), None)
    statement = _SQL.search(output)
    error = error or (output.strip().splitlines()[-1] if output.strip() else "no output")
    return error[:500], (" ".join(statement["sql"].split())[:500] if statement else "")


def run_migration(url: str, command: str, *, cwd: Path, env: Mapping[str, str], log_path: Path,
                  lock_timeout_s: float, statement_timeout_s: float, timeout_s: float | None,
                  redact: Callable[[str], str]) -> MigrationRun:
    with psycopg.connect(url, autocommit=True) as conn:
        before_rev, before_schema = current_revision(conn), schema_snapshot(conn)
    options = f"-c lock_timeout={int(lock_timeout_s * 1000)} -c statement_timeout={int(statement_timeout_s * 1000)}"
    child_env = {**env, "DATABASE_URL": url, "PGOPTIONS": options}
    code, seconds = run_command(command, cwd=cwd, env=child_env, log_path=log_path, timeout_s=timeout_s, redact=redact)
    output = tail(log_path, 20000)
    with psycopg.connect(url, autocommit=True) as conn:
        after_rev, after_schema = current_revision(conn), schema_snapshot(conn)
    run = MigrationRun(ok=code == 0, exit_code=code, duration_s=round(seconds, 3), output_tail=output[-3000:],
                       log=str(log_path), revision_before=before_rev, revision_after=after_rev,
                       schema_changes=schema_diff(before_schema, after_schema))
    if not run.ok:
        if code is None:
            run.error, run.statement = f"timed out after {timeout_s or 0:g}s", ""
        else:
            run.error, run.statement = failure_detail(output)
    return run
