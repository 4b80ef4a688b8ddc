"""Small PostgreSQL helpers shared by the database modules: connections, counts, schema snapshots, tools."""

from __future__ import annotations

import os
import subprocess
from typing import Any, Mapping, Sequence
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg import sql

from deploypipe.core.embedded_pg import pg_bin
from deploypipe.core.redact import mask_url
from deploypipe.errors import StageErrored

__all__ = [
    "available_extensions", "connect", "database_name", "mask_url", "row_counts", "run_tool", "scalar",
    "table_exists", "table_hashes", "user_tables",
    "same_database", "schema_snapshot", "server_version", "tool_target", "with_database",
]


def connect(url: str, **kwargs: Any) -> psycopg.Connection:
    """A psycopg connection; connection failures become StageErrored with the URL masked."""
    try:
        return psycopg.connect(url, connect_timeout=10, **kwargs)
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StageErrored(f"cannot connect to {mask_url(url)}: {mask_url(first)}",
                           hint="check the database URL and that the server is reachable from here") from None


def database_name(url: str) -> str:
    return str(psycopg.conninfo.conninfo_to_dict(url).get("dbname") or "")


def _server_key(url: str) -> tuple[str, str]:
    params = psycopg.conninfo.conninfo_to_dict(url)
    return (str(params.get("host") or "localhost"), str(params.get("port") or "5432"))


def same_database(a: str, b: str) -> bool:
    """Whether two URLs point at the same database on the same server (credentials ignored)."""
    return _server_key(a) == _server_key(b) and database_name(a) == database_name(b)


def with_database(url: str, name: str) -> str:
    """The same server and credentials, another database (URLs stay URLs so they can be masked)."""
    if url.startswith(("postgresql://", "postgres://")):
        parts = urlsplit(url)
        return urlunsplit((parts.scheme, parts.netloc, "/" + quote(name, safe=""), parts.query, parts.fragment))
    params = psycopg.conninfo.conninfo_to_dict(url)
    params["dbname"] = name
    return psycopg.conninfo.make_conninfo("", **params)


def scalar(conn: psycopg.Connection[Any], query: Any, params: Any = None) -> Any:
    """The first column of the first row of ``query`` (a query that always returns a row)."""
    row = conn.execute(query, params).fetchone()
    if row is None:
        raise RuntimeError(f"expected a row from {query!r}")
    return row[0]


def table_exists(conn: psycopg.Connection[Any], name: str) -> bool:
    """Whether ``name`` (optionally schema-qualified) is a table the connection can see."""
    return scalar(conn, "select to_regclass(%s)", (name,)) is not None


def server_version(conn: psycopg.Connection[Any]) -> int:
    """The server's version as ``server_version_num`` (160004 for 16.4)."""
    return int(scalar(conn, "show server_version_num"))


def available_extensions(conn: psycopg.Connection) -> dict[str, list[str]]:
    """Extension name -> versions the server can install (pg_available_extension_versions)."""
    out: dict[str, list[str]] = {}
    for name, version in conn.execute("select name, version from pg_available_extension_versions order by 1, 2"):
        out.setdefault(name, []).append(version)
    return out


def row_counts(conn: psycopg.Connection) -> dict[str, int]:
    """Exact row counts of every user table (schema.table -> rows)."""
    tables = conn.execute(
        "select schemaname, tablename from pg_tables where schemaname not in ('pg_catalog', 'information_schema') "
        "order by 1, 2").fetchall()
    return {f"{schema}.{table}": scalar(conn, sql.SQL("select count(*) from {}.{}").format(
        sql.Identifier(schema), sql.Identifier(table))) for schema, table in tables}


#: Session settings that make ``row::text`` the same on two servers (hashes compare rows across a dump/restore).
_STABLE_TEXT = ("set TimeZone = 'UTC'", "set DateStyle = 'ISO, YMD'", "set IntervalStyle = 'postgres'",
                "set extra_float_digits = 1", "set bytea_output = 'hex'")


def user_tables(conn: psycopg.Connection) -> list[tuple[int, str, int, float]]:
    """(oid, schema.table, pg_table_size, estimated rows) of every user table, as :func:`row_counts` sees them."""
    return [(int(oid), name, int(size), float(rows)) for oid, name, size, rows in conn.execute(
        "select c.oid, n.nspname || '.' || c.relname, pg_table_size(c.oid), greatest(c.reltuples, 0) "
        "from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "where c.relkind in ('r', 'p') and n.nspname not in ('pg_catalog', 'information_schema') "
        "and n.nspname not like 'pg_toast%' order by 2").fetchall()]


def table_hashes(conn: psycopg.Connection, tables: Sequence[str]) -> dict[str, str]:
    """An order-independent hash of every row of each table (``sum(hashtextextended(row::text))``).

    Costs about eight times a count(*), so callers hash small tables only. The session's text settings are
    pinned so a restored copy hashes the same.
    """
    for statement in _STABLE_TEXT:
        conn.execute(statement)
    hashes = {}
    for name in tables:
        schema, _, table = name.partition(".")
        hashes[name] = str(scalar(conn, sql.SQL(
            "select coalesce(sum(hashtextextended(t::text, 0)::numeric), 0) from {}.{} t").format(
            sql.Identifier(schema), sql.Identifier(table))))
    return hashes


def schema_snapshot(conn: psycopg.Connection) -> dict[str, list[str]]:
    """table -> 'column type' list in column order, for schema differences."""
    rows = conn.execute(
        "select c.table_schema || '.' || c.table_name, c.column_name || ' ' || c.data_type "
        "from information_schema.columns c join information_schema.tables t "
        "on t.table_schema = c.table_schema and t.table_name = c.table_name and t.table_type = 'BASE TABLE' "
        "where c.table_schema not in ('pg_catalog', 'information_schema') order by 1, c.ordinal_position").fetchall()
    snapshot: dict[str, list[str]] = {}
    for table, column in rows:
        snapshot.setdefault(table, []).append(column)
    return snapshot


def tool_target(url: str) -> tuple[str, dict[str, str]]:
    """(URL without its password, env with PGPASSWORD): keeps the password out of ``ps`` for pg_dump & co."""
    params = psycopg.conninfo.conninfo_to_dict(url)
    password = params.pop("password", None)
    if url.startswith(("postgresql://", "postgres://")):
        parts = urlsplit(url)
        if parts.password is not None:
            user = parts.netloc.rpartition("@")[0].split(":", 1)[0]
            netloc = f"{user}@{parts.netloc.rpartition('@')[2]}"
            url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
        if "password=" in parts.query:
            url = psycopg.conninfo.make_conninfo("", **params)
    else:
        url = psycopg.conninfo.make_conninfo("", **params)
    return url, ({"PGPASSWORD": str(password)} if password else {})


def run_tool(tool: str, args: Sequence[str], *, stdout: Any = subprocess.PIPE, env: Mapping[str, str] | None = None,
             what: str) -> subprocess.CompletedProcess:
    """Run a PostgreSQL client tool with a private umask; failures become StageErrored with the tool's message."""
    result = subprocess.run([pg_bin(tool), *args], stdout=stdout, stderr=subprocess.PIPE,
                            env={**os.environ, **(env or {})}, preexec_fn=lambda: os.umask(0o077))
    if result.returncode != 0:
        message = result.stderr.decode("utf-8", "replace").strip().splitlines()
        raise StageErrored(f"{what}: {tool} exited {result.returncode}: "
                           f"{mask_url(' '.join(message[-3:])) or 'no message'}")
    return result
