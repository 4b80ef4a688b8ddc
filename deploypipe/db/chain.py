"""Every migration of a repository's chain with its phase, read offline: what ``plan`` shows without asking
production which migrations it has applied (``db.lint`` classifies the pending ones against production)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from deploypipe.db.phases import OverrideError, classify, split_alembic_sql
from deploypipe.errors import DeployPipeError

__all__ = ["chain_phases"]

#: Alembic's offline mode needs a URL for its dialect only: nothing connects to it.
_OFFLINE_URL = "postgresql://plan@127.0.0.1:1/plan"


def chain_phases(tool: Literal["alembic", "prisma", "sql"], path: Path) -> list[tuple[str, str]]:
    """(migration, phase summary) for each migration, oldest first; the phase says why when it cannot be read."""
    if tool == "alembic":
        from deploypipe.db.alembic_repo import AlembicRepo

        try:
            repo = AlembicRepo(path.resolve())
            chunks = dict(split_alembic_sql(repo.offline_sql([], {"DATABASE_URL": _OFFLINE_URL})))
        except DeployPipeError as exc:
            return [("(alembic)", f"unknown: {exc.message}")]
        sources: list[tuple[str, str | None, Path | None]] = [
            (rev.revision, chunks.get(rev.revision), Path(rev.path)) for rev in repo.pending([])]
    elif tool == "prisma":
        from deploypipe.db import prisma

        sources = [(name, (file).read_text(encoding="utf-8"), None)
                   for name, file in prisma.disk_migrations(path).items()]
    else:
        sources = [(file.name, file.read_text(encoding="utf-8"), None) for file in sorted(path.glob("*.sql"))]
    return [(name, _phase(name, sql, script)) for name, sql, script in sources]


def _phase(name: str, sql: str | None, script: Path | None) -> str:
    from pglast.parser import ParseError

    if sql is None:
        return "unknown: its offline SQL could not be generated"
    try:
        source = script.read_text(encoding="utf-8") if script is not None else sql
        return classify(name, sql, source=source).summary()
    except OverrideError as exc:
        return f"unknown: {exc}"
    except ParseError as exc:
        return f"unknown: the SQL does not parse ({exc})"
