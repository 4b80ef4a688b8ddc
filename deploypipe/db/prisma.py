"""Prisma migrations by their conventions: ``prisma/migrations/<name>/migration.sql`` and ``_prisma_migrations``.

The Prisma CLI is not needed to read the state; ``resolve_applied`` does what
``prisma migrate resolve --applied`` does, but only after proving from the
catalog that every object the migration creates exists.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from deploypipe.db.pg import table_exists
from deploypipe.errors import StageErrored, StageFailed

__all__ = ["PrismaRow", "checksum", "checksum_of", "created_objects", "db_rows", "disk_migrations", "missing_objects",
           "resolve_applied"]


@dataclass(frozen=True)
class PrismaRow:
    migration_name: str
    checksum: str
    started_at: Any
    finished_at: Any
    rolled_back_at: Any
    logs: str | None

    @property
    def failed(self) -> bool:
        return self.finished_at is None and self.rolled_back_at is None


def disk_migrations(migrations_dir: Path) -> dict[str, Path]:
    if not migrations_dir.is_dir():
        raise StageErrored(f"{migrations_dir} is not a directory", hint="set prisma_dir to prisma/migrations")
    return {p.parent.name: p for p in sorted(migrations_dir.glob("*/migration.sql"))}


def checksum(path: Path) -> str:
    """Prisma's checksum of a migration file: the SHA-256 of its bytes, lower-case hex."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def checksum_of(script: str) -> str:
    """Prisma's checksum of a migration script (``render_checksum``): the SHA-256 of its UTF-8 bytes."""
    return hashlib.sha256(script.encode("utf-8")).hexdigest()


def db_rows(conn: psycopg.Connection) -> list[PrismaRow]:
    if not table_exists(conn, "_prisma_migrations"):
        return []
    return [PrismaRow(*row) for row in conn.execute(
        "select migration_name, checksum, started_at, finished_at, rolled_back_at, logs from _prisma_migrations "
        "order by started_at")]


def _relname(relation: Any) -> str:
    return str(getattr(relation, "relname", "") or "")


def created_objects(sql_text: str) -> list[tuple[str, str, str | None]]:
    """(kind, name, parent) for what a migration creates: extension, type, table, column, index, constraint."""
    from pglast import ast, parse_sql

    objects: list[tuple[str, str, str | None]] = []
    for raw in parse_sql(sql_text):
        stmt = raw.stmt
        if isinstance(stmt, ast.CreateExtensionStmt):
            objects.append(("extension", stmt.extname or "", None))
        elif isinstance(stmt, ast.CreateEnumStmt):
            objects.append(("type", str(getattr((stmt.typeName or ())[-1], "sval", "")), None))
        elif isinstance(stmt, ast.CreateStmt):
            table = _relname(stmt.relation)
            objects.append(("table", table, None))
            for element in stmt.tableElts or ():
                if isinstance(element, ast.ColumnDef):
                    objects.append(("column", element.colname or "", table))
                elif isinstance(element, ast.Constraint) and element.conname:
                    objects.append(("constraint", element.conname, table))
        elif isinstance(stmt, ast.IndexStmt) and stmt.idxname:
            objects.append(("index", stmt.idxname, _relname(stmt.relation)))
        elif isinstance(stmt, ast.AlterTableStmt):
            table = _relname(stmt.relation)
            for cmd in stmt.cmds or ():
                definition = getattr(cmd, "def_", None)
                if isinstance(definition, ast.ColumnDef):
                    objects.append(("column", definition.colname or "", table))
                elif isinstance(definition, ast.Constraint) and definition.conname:
                    objects.append(("constraint", definition.conname, table))
    return objects


_EXISTS = {
    "extension": "select 1 from pg_extension where extname = %s",
    "type": "select 1 from pg_type where typname = %s",
    "table": "select 1 from pg_class where relname = %s and relkind in ('r', 'p')",
    "index": "select 1 from pg_class where relname = %s and relkind in ('i', 'I')",
    "column": "select 1 from information_schema.columns where column_name = %s and table_name = %s",
    "constraint": "select 1 from pg_constraint c join pg_class t on t.oid = c.conrelid "
                  "where c.conname = %s and t.relname = %s",
}


def missing_objects(conn: psycopg.Connection, sql_text: str) -> list[str]:
    missing = []
    for kind, name, parent in created_objects(sql_text):
        args = (name, parent) if kind in ("column", "constraint") else (name,)
        if conn.execute(_EXISTS[kind], args).fetchone() is None:
            missing.append(f"{kind} {parent + '.' if parent else ''}{name}")
    return missing


def resolve_applied(conn: psycopg.Connection, migration: str, sql_path: Path) -> list[str]:
    """Mark a failed migration applied after verifying its objects exist; returns what was verified."""
    rows = [r for r in db_rows(conn) if r.migration_name == migration and r.failed]
    if not rows:
        raise StageFailed(f"migration {migration} is not marked failed in _prisma_migrations; nothing to resolve")
    sql_text = sql_path.read_text(encoding="utf-8")
    missing = missing_objects(conn, sql_text)
    if missing:
        raise StageFailed(f"refusing to mark {migration} applied: {len(missing)} object(s) it creates do not exist: "
                          f"{', '.join(missing)}", hint="the migration really did not finish: repair the schema or "
                          "mark it rolled back and let it run again")
    verified = [f"{kind} {parent + '.' if parent else ''}{name}" for kind, name, parent in created_objects(sql_text)]
    conn.execute("update _prisma_migrations set finished_at = now(), applied_steps_count = 1, checksum = %s, "
                 "logs = coalesce(logs, '') || %s where migration_name = %s and finished_at is null and "
                 "rolled_back_at is null",
                 (checksum(sql_path), f"\n[deploypipe] marked applied after verifying: {', '.join(verified)}",
                  migration))
    conn.commit()
    return verified
