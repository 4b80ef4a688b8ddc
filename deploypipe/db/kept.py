"""What a migration rollback keeps and loses, counted on the database: rows now against the backup, and the values
a downgrade would drop with the columns and tables the migration added."""

from __future__ import annotations

from collections.abc import Mapping

from psycopg import sql

from deploypipe.db.pg import connect, row_counts

__all__ = ["droppable_values", "kept_rows"]


def kept_rows(url: str, backup_counts: Mapping[str, int]) -> dict[str, dict[str, int]]:
    """Per table: rows now, and how many more than the backup had (writes since the backup that stay)."""
    with connect(url, autocommit=True) as conn:
        now = row_counts(conn)
    return {table: {"rows": rows, "since_backup": rows - backup_counts.get(table, 0)}
            for table, rows in sorted(now.items()) if not table.endswith("alembic_version")}


def droppable_values(url: str, schema_changes: Mapping[str, list[str]]) -> dict[str, int]:
    """Non-null values in each added column and rows in each added table (``schema_diff``'s ``schema.table.column
    type`` and ``schema.table``): what dropping them loses."""
    lost: dict[str, int] = {}
    with connect(url, autocommit=True) as conn:
        for column in schema_changes.get("columns_added", []):
            table, _, name = column.split(" ", 1)[0].rpartition(".")
            query = sql.SQL("select count(*) from {} where {} is not null").format(
                sql.Identifier(*table.split(".")), sql.Identifier(name))
            lost[f"{table}.{name}"] = int(conn.execute(query).fetchone()[0])  # type: ignore[index]
        for table in schema_changes.get("tables_added", []):
            if table.endswith("alembic_version"):
                continue
            query = sql.SQL("select count(*) from {}").format(sql.Identifier(*table.split(".")))
            lost[table] = int(conn.execute(query).fetchone()[0])  # type: ignore[index]
    return lost
