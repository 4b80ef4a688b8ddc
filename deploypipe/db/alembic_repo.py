"""Read an Alembic repository (heads, revision graph, pending range) and the database's alembic_version."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg

from deploypipe.db.pg import table_exists
from deploypipe.errors import StageErrored

__all__ = ["AlembicRepo"]


class AlembicRepo:
    def __init__(self, ini: Path):
        from alembic.config import Config
        from alembic.script import ScriptDirectory

        if not ini.exists():
            raise StageErrored(f"{ini} not found", hint="set alembic_ini to the project's alembic.ini")
        self.ini = ini
        self.config = Config(str(ini))
        location = self.config.get_main_option("script_location")
        if not location:
            raise StageErrored(f"{ini} has no script_location", hint="set script_location in [alembic]")
        self.config.set_main_option("script_location", str(ini.parent / location))
        self.script = ScriptDirectory.from_config(self.config)

    def heads(self) -> list[str]:
        return list(self.script.get_heads())

    def knows(self, revision: str) -> bool:
        try:
            return self.script.get_revision(revision) is not None
        except Exception:  # noqa: BLE001 - alembic raises several types for unknown or ambiguous ids
            return False

    def path_of(self, revision: str) -> str:
        rev = self.script.get_revision(revision)
        return rev.path if rev is not None else ""

    def pending(self, current: list[str]) -> list[Any]:
        """Revisions between the database's and the heads, oldest first."""
        lower = current[0] if len(current) == 1 and self.knows(current[0]) else "base"
        revs = list(self.script.iterate_revisions("heads", lower))
        return list(reversed([r for r in revs if r.revision not in current]))

    @staticmethod
    def db_revisions(conn: psycopg.Connection) -> list[str]:
        exists = table_exists(conn, "alembic_version")
        if not exists:
            return []
        return [row[0] for row in conn.execute("select version_num from alembic_version")]

    def offline_sql(self, current: list[str], env: dict[str, str]) -> str:
        """``alembic upgrade <current>:heads --sql``: the SQL of the pending range, without touching a database."""
        start = current[0] if len(current) == 1 else "base"
        target = f"{start}:heads" if start != "base" else "heads"
        result = subprocess.run([sys.executable, "-m", "alembic", "-c", str(self.ini), "upgrade", target, "--sql"],
                                cwd=self.ini.parent, capture_output=True, text=True, env={**os.environ, **env})
        if result.returncode != 0:
            raise StageErrored(f"alembic upgrade --sql failed: {result.stderr.strip().splitlines()[-1:]}",
                               where=str(self.ini))
        return result.stdout
