"""Migration files linted offline for ``lint``: deploypipe's SQL rules, squawk, the Alembic script rules, and
each migration's phase as an info line (deploypipe.db.phases); nothing connects to a database."""

from __future__ import annotations

import configparser
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from deploypipe.core.findings import Finding
from deploypipe.db import lint as dblint

__all__ = ["lint_revision", "lint_sql_file", "stage_migrations"]


def _at(finding: Finding, path: Path, **where: Any) -> Finding:
    """``finding`` located in ``path``; db.lint's own rules name the migration without the word 'migration'."""
    subject = finding.subject if " " in finding.subject or not finding.subject else f"migration {finding.subject}"
    return replace(finding, subject=subject, path=str(path), **where)


def lint_sql_file(path: Path, text: str, squawk: bool = True, excludes: tuple[str, ...] = dblint.DEFAULT_SQUAWK_EXCLUDES
         ) -> list[Finding]:
    """deploypipe's SQL rules (each finding at its statement), then squawk."""
    from pglast import ast
    from pglast.parser import ParseError, parse_sql

    name = path.parent.name if path.name == "migration.sql" else path.name
    try:
        statements = parse_sql(text)
    except ParseError as exc:
        offset = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], int) else 0
        line, col = dblint.position(text, offset)
        return [Finding("sql-syntax", "error", f"PostgreSQL cannot parse it: {exc.args[0]}",
                        subject=f"migration {name}", path=str(path), line=line, col=col)]
    found = [_at(f, path) for f in dblint.lint_sql(text, name, None)]
    for raw in statements:
        line, col = dblint.position(text, raw.stmt_location or 0)
        stmt = raw.stmt
        if isinstance(stmt, ast.CreateExtensionStmt):
            version = next((str(getattr(o.arg, "sval", o.arg)) for o in stmt.options or ()
                            if o.defname == "new_version"), None)
            if version:
                found.append(Finding(
                    "extension-version-unavailable", "info", f"not checked offline: whether the production server "
                    f'offers {stmt.extname} "{version}" needs its pg_available_extension_versions',
                    "the pipeline's db.lint stage checks it against the server before each deploy",
                    f"migration {name}", path=str(path), line=line, col=col))
    if squawk:
        found += [_at(f, path) for f in dblint.squawk(text, name, excludes)]
    return found + _phase(path, name, text)


def _phase(path: Path, name: str, text: str) -> list[Finding]:
    """The migration's phase as an info line (deploypipe.db.phases), at its first contract statement."""
    from pglast.parser import ParseError

    from deploypipe.db.phases import OverrideError, classify

    try:
        phase = classify(name, text)
    except OverrideError as exc:
        return [Finding("phase-override-without-reason", "error", str(exc), "say why the live release keeps "
                        "working on the migrated schema", subject=f"migration {name}", path=str(path))]
    except ParseError:
        return []  # reported as sql-syntax
    first = phase.contract[0].line if phase.contract else None
    return [Finding("migration-phase", "info", phase.summary(), subject=f"migration {name}", path=str(path),
                    line=first)]


def _chain_phases(stage_id: str, tool: Any, location: Path, path: str, line: int | None) -> list[Finding]:
    """Each Alembic revision's phase, from its offline SQL, as info lines at the pipeline's db.lint stage."""
    from deploypipe.db.chain import chain_phases

    return [Finding("migration-phase", "info", phase, subject=f"migration {name}", path=path, line=line)
            for name, phase in chain_phases(tool, location)]


def lint_revision(path: Path) -> list[Finding]:
    """Alembic AST rules, each finding at its file:line:col."""
    return dblint.lint_python(path, path.stem)


def stage_migrations(stage_id: str, params: Any, base: Path, read: Callable[[Path], str], path: str,
                     line: int | None) -> list[Finding]:
    """The migrations a db.lint stage would lint, linted offline (all of them: which are pending needs the DB)."""
    excludes = tuple(params.squawk_excludes) if params.squawk_excludes is not None else dblint.DEFAULT_SQUAWK_EXCLUDES
    if params.tool == "alembic":
        ini = base / params.alembic_ini
        parser = configparser.ConfigParser(defaults={"here": str(ini.parent)})
        if not parser.read(ini) or not parser.has_option("alembic", "script_location"):
            return [Finding("migrations-missing", "error", f"stage {stage_id}: {params.alembic_ini} not found or "
                            "without [alembic] script_location", path=path, line=line)]
        files = sorted((ini.parent / parser.get("alembic", "script_location") / "versions").glob("*.py"))
        skipped = Finding("alembic-sql-not-checked", "info", f"stage {stage_id}: offline, only the Alembic scripts "
                          "are checked; the SQL rules, squawk and extension versions run on the pending revisions' "
                          "SQL in the db.lint stage, against the production server", path=path, line=line)
        for file in files:
            read(file)
        return [skipped] + [f for file in files for f in lint_revision(file)] + _chain_phases(stage_id, "alembic", ini,
                                                                                          path, line)
    relative = params.prisma_dir if params.tool == "prisma" else params.sql_dir
    directory = base / relative
    files = sorted(directory.glob("*/migration.sql" if params.tool == "prisma" else "*.sql"))
    if not directory.is_dir():
        return [Finding("migrations-missing", "error", f"stage {stage_id}: {relative} is not a directory",
                        path=path, line=line)]
    return [f for file in files for f in lint_sql_file(file, read(file), params.squawk, excludes)]
