"""deploypipe's own migration command for Prisma's ``migration.sql`` files and plain SQL files.

``deploypipe apply-migrations prisma|sql DIR [--through NAME]`` applies the pending migrations of ``DIR``
(up to and including ``NAME``) to ``DATABASE_URL``: Prisma's as ``prisma migrate deploy`` records them
(deploypipe.db.prisma_apply), SQL files with deploypipe's ledger (deploypipe.db.sql_ledger). It is a command
like ``alembic upgrade``, so ``db.dry_run`` and ``db.migrate`` run it the same way: with ``PGOPTIONS`` carrying
``lock_timeout``/``statement_timeout``, its output in the run's log, under deploypipe's migration lock. A failure
prints ``ERROR: ...`` (and ``[SQL: statement]`` when known) and exits 1.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import Literal

__all__ = ["apply_command", "apply_migrations"]

Tool = Literal["prisma", "sql"]


def apply_command(tool: Tool, directory: Path, through: str | None = None) -> str:
    """The shell command that applies ``directory``'s pending migrations (up to ``through``)."""
    args = [sys.executable, "-m", "deploypipe.cli", "apply-migrations", tool, str(directory)]
    return shlex.join(args + (["--through", through] if through else []))


def apply_migrations(tool: Tool, directory: Path, through: str | None = None) -> int:
    """Apply ``directory``'s pending migrations to ``$DATABASE_URL``; 0 applied, 1 failed, 2 no URL."""
    import psycopg

    from deploypipe.db.prisma_apply import apply_prisma
    from deploypipe.db.script_error import ApplyError
    from deploypipe.db.sql_ledger import apply_sql
    from deploypipe.errors import DeployPipeError

    url = os.environ.get("DATABASE_URL")
    if not url:
        print("ERROR: DATABASE_URL is not set", file=sys.stderr)
        return 2

    def say(line: str) -> None:
        print(line, flush=True)

    try:
        with psycopg.connect(url, autocommit=True) as conn:
            apply = apply_prisma if tool == "prisma" else apply_sql
            applied = apply(conn, directory, through=through, say=say)
    except ApplyError as exc:
        print(f"ERROR: {exc.message}" + (f" ({exc.hint})" if exc.hint else ""), file=sys.stderr)
        if exc.statement:
            print(f"[SQL: {exc.statement}]", file=sys.stderr)
        return 1
    except psycopg.Error as exc:
        print(f"ERROR: {exc.diag.message_primary or exc}", file=sys.stderr)
        return 1
    except DeployPipeError as exc:
        print(f"ERROR: {exc.message}" + (f" ({exc.hint})" if exc.hint else ""), file=sys.stderr)
        return 1
    say(f"applied {len(applied)} migration(s)" + (f": {', '.join(applied)}" if applied else ""))
    return 0
