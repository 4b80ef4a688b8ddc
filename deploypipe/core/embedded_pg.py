"""An embedded PostgreSQL (pgserver) for the local default, the emulator and the tests.

pgserver ships PostgreSQL binaries (server, pg_dump, pg_restore, psql) and
pgvector inside a wheel, so nothing needs installing on the machine. The
server listens on a Unix socket inside its data directory.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

__all__ = ["EmbeddedPostgres", "pg_bin", "start_embedded"]


def pg_bin(tool: str) -> str:
    """Path of a PostgreSQL client tool (``pg_dump``, ``pg_restore``, ``psql``...).

    Prefers the binaries bundled with pgserver so client and server versions
    match; falls back to PATH.
    """
    try:
        _private_runtime_dir()
        import pgserver

        candidate = Path(pgserver.__file__).parent / "pginstall" / "bin" / tool
        if candidate.exists():
            return str(candidate)
    except ImportError:  # pragma: no cover - pgserver is a dependency
        pass
    found = shutil.which(tool)
    if not found:
        from deploypipe.errors import StageErrored

        raise StageErrored(f"{tool} not found", hint="install PostgreSQL client tools or pgserver")
    return found


@dataclass
class EmbeddedPostgres:
    """A running embedded server; ``url(db, user, password)`` builds connection URLs."""

    data_dir: Path
    _server: Any

    @property
    def socket_dir(self) -> str:
        info = self._server.get_postmaster_info()
        return str(info.socket_dir or self.data_dir)

    def url(self, database: str = "postgres", user: str = "postgres", password: str | None = None) -> str:
        auth = quote(user, safe="")
        if password:
            auth += ":" + quote(password, safe="")
        return f"postgresql://{auth}@/{quote(database, safe='')}?host={quote(self.socket_dir, safe='/')}"

    def psql(self, sql: str) -> str:
        return self._server.psql(sql)

    def create_database(self, name: str, *, owner: str | None = None, password: str | None = None) -> str:
        """Create ``name`` (and role ``owner`` with ``password``) unless they exist; return its URL."""
        import psycopg
        from psycopg import sql as q

        with psycopg.connect(self.url(), autocommit=True) as conn:
            if owner and not conn.execute("select 1 from pg_roles where rolname = %s", (owner,)).fetchone():
                stmt = q.SQL("create role {} login").format(q.Identifier(owner))
                if password:
                    stmt = q.SQL("create role {} login password {}").format(q.Identifier(owner), q.Literal(password))
                conn.execute(stmt)
            if not conn.execute("select 1 from pg_database where datname = %s", (name,)).fetchone():
                stmt = q.SQL("create database {}").format(q.Identifier(name))
                if owner:
                    stmt = q.SQL("create database {} owner {}").format(q.Identifier(name), q.Identifier(owner))
                conn.execute(stmt)
        return self.url(name, owner or "postgres", password)

    def drop_database(self, name: str) -> None:
        import psycopg
        from psycopg import sql as q

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(q.SQL("drop database if exists {} with (force)").format(q.Identifier(name)))

    def stop(self) -> None:
        cleanup = getattr(self._server, "cleanup", None)
        if cleanup:
            cleanup()


def _private_runtime_dir() -> None:
    """pgserver keeps its lock file in the user runtime dir; give it a private one if none is set."""
    if os.environ.get("XDG_RUNTIME_DIR"):
        return
    runtime = Path("/tmp") / f"deploypipe-runtime-{os.getuid()}"
    runtime.mkdir(mode=0o700, exist_ok=True)
    os.environ["XDG_RUNTIME_DIR"] = str(runtime)


def start_embedded(data_dir: Path | str, *, keep_running: bool = False) -> EmbeddedPostgres:
    """Start (or reuse) the embedded server whose data lives in ``data_dir``.

    With ``keep_running`` the server outlives this process (pgserver's
    ``cleanup_mode=None``); otherwise it stops when the last user exits.
    """
    _private_runtime_dir()
    import pgserver

    path = Path(data_dir).resolve()
    path.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(str(path), cleanup_mode=None if keep_running else "stop")
    return EmbeddedPostgres(data_dir=path, _server=server)
