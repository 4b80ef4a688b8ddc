"""Every migration of a repository's chain with its phase, read offline: what ``plan`` shows without asking
production which migrations it has applied (``db.lint`` classifies the pending ones against production)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from deploypipe.db.phases import MigrationPhase, OverrideError, classify, split_alembic_sql
from deploypipe.errors import DeployPipeError

__all__ = ["ChainMigration", "chain_migrations", "chain_phases"]

#: Alembic's offline mode needs a URL for its dialect only: nothing connects to it.
_OFFLINE_URL = "postgresql://plan@127.0.0.1:1/plan"


@dataclass(frozen=True)
class ChainMigration:
    """One migration of the chain: its file, and its phase (None: ``unknown`` says why it cannot be read)."""

    name: str
    file: Path | None
    phase: MigrationPhase | None
    unknown: str = ""

    def summary(self) -> str:
        return self.phase.summary() if self.phase is not None else f"unknown: {self.unknown}"


def chain_phases(tool: Literal["alembic", "prisma", "sql"], path: Path) -> list[tuple[str, str]]:
    """(migration, phase summary) for each migration, oldest first; the phase says why when it cannot be read."""
    return [(migration.name, migration.summary()) for migration in chain_migrations(tool, path)]


def chain_migrations(tool: Literal["alembic", "prisma", "sql"], path: Path) -> list[ChainMigration]:
    """Each migration of the chain at ``path`` (alembic.ini, Prisma's or the SQL files' directory), oldest first."""
    if tool == "alembic":
        from deploypipe.db.alembic_repo import AlembicRepo

        try:
            repo = AlembicRepo(path.resolve())
            chunks = dict(split_alembic_sql(repo.offline_sql([], {"DATABASE_URL": _OFFLINE_URL})))
        except DeployPipeError as exc:
            return [ChainMigration("(alembic)", None, None, exc.message)]
        sources: list[tuple[str, str | None, Path]] = [
            (rev.revision, chunks.get(rev.revision), Path(rev.path)) for rev in repo.pending([])]
    elif tool == "prisma":
        from deploypipe.db import prisma

        sources = [(name, file.read_text(encoding="utf-8"), file)
                   for name, file in prisma.disk_migrations(path).items()]
    else:
        sources = [(file.name, file.read_text(encoding="utf-8"), file) for file in sorted(path.glob("*.sql"))]
    return [_classified(name, sql, file, script=tool == "alembic") for name, sql, file in sources]


def _classified(name: str, sql: str | None, file: Path, *, script: bool) -> ChainMigration:
    from pglast.parser import ParseError

    if sql is None:
        return ChainMigration(name, file, None, "its offline SQL could not be generated")
    try:
        source = file.read_text(encoding="utf-8") if script else sql
        return ChainMigration(name, file, classify(name, sql, source=source))
    except OverrideError as exc:
        return ChainMigration(name, file, None, str(exc))
    except ParseError as exc:
        return ChainMigration(name, file, None, f"the SQL does not parse ({exc})")
