"""Apply pending Prisma migrations and record them in ``_prisma_migrations`` exactly as ``prisma migrate deploy`` does.

deploypipe applies the expand phase of a Prisma release itself (the Prisma CLI is the user's ``command`` for the
rest), so a later ``prisma migrate deploy`` must see these migrations as applied and apply only the others. What
is matched, from prisma/prisma-engines (``schema-engine``):

- ``core/src/commands/apply_migrations.rs``: under ``acquire_lock``, ``initialize`` the persistence, refuse when a
  row has ``finished_at`` and ``rolled_back_at`` both null (P3009, FoundFailedMigrations), and apply, in directory
  name order, each migration with no row whose ``rolled_back_at`` is null: ``record_migration_started``, the
  script, then ``record_successful_step`` and ``record_migration_finished``; on error ``record_failed_step`` (the
  logs) and stop.
- ``connectors/sql-schema-connector/src/flavour/postgres.rs``: the lock is ``pg_advisory_lock(72707369)``; the
  table is created by ``create_migrations_table`` (:data:`MIGRATIONS_TABLE_DDL`, verbatim), only in a schema with
  no other table (else P3005, DatabaseSchemaNotEmpty).
- ``connectors/sql-schema-connector/src/sql_migration_persistence.rs``: the started row sets ``id`` (a UUID v4),
  ``checksum``, ``started_at`` (the client's UTC clock) and ``migration_name`` (``logs`` stays null,
  ``applied_steps_count`` 0); a successful step adds 1 to ``applied_steps_count``; finishing sets ``finished_at``
  (the client's clock); a failed step sets ``logs``.
- ``connectors/schema-connector/src/checksum.rs``: the checksum is the SHA-256 of the script, lower-case hex,
  64 characters (:func:`deploypipe.db.prisma.checksum`).
- ``flavour/postgres/native/mod.rs`` ``apply_migration_script``: the whole ``migration.sql`` is sent as one simple
  query, so PostgreSQL runs it as one implicit transaction; a failure is logged as P3018 (ApplyMigrationError,
  ``libs/user-facing-errors/src/schema_engine.rs``) with the SQLSTATE and ``SEVERITY: message`` plus DETAIL/HINT
  (Prisma also appends the failing line's context and a debug dump of the error, which are left out here).

The connection's ``lock_timeout``/``statement_timeout`` come from ``PGOPTIONS``, as for any migration command
(deploypipe.db.migration_run), and the caller holds deploypipe's own migration lock (deploypipe.db.migrate).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Callable

import psycopg

from deploypipe.db import prisma
from deploypipe.db.pg import table_exists
from deploypipe.db.script_error import ApplyError, located, up_to

__all__ = ["MIGRATIONS_TABLE_DDL", "PRISMA_LOCK_ID", "apply_prisma"]

#: Prisma Migrate's advisory lock key on PostgreSQL.
PRISMA_LOCK_ID = 72707369

#: ``create_migrations_table`` of Prisma's PostgreSQL flavour, verbatim.
MIGRATIONS_TABLE_DDL = """CREATE TABLE _prisma_migrations (
    id                      VARCHAR(36) PRIMARY KEY NOT NULL,
    checksum                VARCHAR(64) NOT NULL,
    finished_at             TIMESTAMPTZ,
    migration_name          VARCHAR(255) NOT NULL,
    logs                    TEXT,
    rolled_back_at          TIMESTAMPTZ,
    started_at              TIMESTAMPTZ NOT NULL DEFAULT now(),
    applied_steps_count     INTEGER NOT NULL DEFAULT 0
);
"""

_P3018 = ("A migration failed to apply. New migrations cannot be applied before the error is recovered from. Read "
          "more about how to resolve migration issues in a production database: https://pris.ly/d/migrate-resolve"
          "\n\nMigration name: {name}\n\nDatabase error code: {code}\n\nDatabase error:\n{error}\n")


def _now() -> datetime:
    return datetime.now(UTC)


def _initialize(conn: psycopg.Connection) -> None:
    if table_exists(conn, "_prisma_migrations"):
        return
    other = conn.execute("select relname from pg_class where relkind = 'r' and relnamespace = "
                         "current_schema()::regnamespace limit 1").fetchone()
    if other is not None:
        raise ApplyError(f"P3005: the database schema is not empty (table {other[0]}) and has no _prisma_migrations; "
                         "Prisma refuses to migrate it before it is baselined (https://pris.ly/d/migrate-baseline)")
    conn.execute(MIGRATIONS_TABLE_DDL)


def _refuse_failed(rows: list[prisma.PrismaRow]) -> None:
    failed = [row for row in rows if row.failed]
    if failed:
        details = "; ".join(f"the `{row.migration_name}` migration started at {row.started_at} failed"
                            for row in failed)
        raise ApplyError(f"P3009: migrate found failed migrations in the target database, new migrations will not be "
                         f"applied: {details}", hint="db.migration_status says how to resolve each one")


def _pending(rows: list[prisma.PrismaRow], names: list[str]) -> list[str]:
    recorded = {row.migration_name for row in rows if row.rolled_back_at is None}
    return [name for name in names if name not in recorded]


def _apply_one(conn: psycopg.Connection, name: str, script: str) -> None:
    migration_id = str(uuid.uuid4())
    conn.execute("insert into _prisma_migrations (id, checksum, started_at, migration_name) values (%s, %s, %s, %s)",
                 (migration_id, prisma.checksum_of(script), _now(), name))
    try:
        conn.execute(script.encode("utf-8"))  # no parameters: one simple query, one implicit transaction
    except psycopg.Error as exc:
        diag = exc.diag
        error = f"{diag.severity or 'ERROR'}: {diag.message_primary or exc}"
        error += f"\nDETAIL: {diag.message_detail}" if diag.message_detail else ""
        error += f"\nHINT: {diag.message_hint}" if diag.message_hint else ""
        logs = _P3018.format(name=name, code=exc.sqlstate or "none", error=error)
        conn.execute("update _prisma_migrations set logs = %s where id = %s", (logs, migration_id))
        raise located(exc, name, script) from None
    conn.execute("update _prisma_migrations set applied_steps_count = applied_steps_count + 1 where id = %s",
                 (migration_id,))
    conn.execute("update _prisma_migrations set finished_at = %s where id = %s", (_now(), migration_id))


def apply_prisma(conn: psycopg.Connection, migrations_dir: Path, *, through: str | None = None,
                 say: Callable[[str], None] = print) -> list[str]:
    """Apply the pending migrations of ``migrations_dir`` (up to and including ``through``) on an autocommit
    connection; returns their names. ApplyError on the first failure, recorded failed as Prisma records it."""
    on_disk = prisma.disk_migrations(migrations_dir)
    names = up_to(list(on_disk), through, migrations_dir)
    conn.execute("select pg_advisory_lock(%s)", (PRISMA_LOCK_ID,))
    try:
        _initialize(conn)
        rows = prisma.db_rows(conn)
        _refuse_failed(rows)
        applied = []
        for name in _pending(rows, names):
            say(f"Applying migration `{name}`")
            _apply_one(conn, name, on_disk[name].read_bytes().decode("utf-8"))  # as written: no newline translation
            applied.append(name)
        return applied
    finally:
        conn.execute("select pg_advisory_unlock(%s)", (PRISMA_LOCK_ID,))
