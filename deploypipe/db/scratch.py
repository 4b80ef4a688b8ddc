"""Scratch databases for backup verification and dry runs, on an embedded PostgreSQL of this machine.

Nothing is created on the production server: verification restores and
staging copies live in ``.deploypipe/scratch-pg`` (started on demand, reused).
"""

from __future__ import annotations

from pathlib import Path

from deploypipe.core.embedded_pg import EmbeddedPostgres, start_embedded

__all__ = ["ScratchServer"]


class ScratchServer:
    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self._server: EmbeddedPostgres | None = None

    @property
    def server(self) -> EmbeddedPostgres:
        if self._server is None:
            self._server = start_embedded(self.data_dir)
        return self._server

    def create(self, name: str) -> str:
        """A fresh, empty database ``name`` (dropped first if it exists); returns its URL."""
        self.server.drop_database(name)
        return self.server.create_database(name)

    def drop(self, name: str) -> None:
        self.server.drop_database(name)

    def version(self) -> int:
        import psycopg

        from deploypipe.db.pg import server_version

        with psycopg.connect(self.server.url()) as conn:
            return server_version(conn)
