"""Static checks of pending migrations before anything runs: squawk plus deploypipe's own rules.

Own rules (where squawk has none or too weak a one):

- ``extension-version-unavailable`` (error): ``CREATE EXTENSION ... VERSION v`` where the production server does not
  offer v (``pg_available_extension_versions``) — seed 001, pgvector 0.5.1.
- ``alembic-op-monkeypatch`` (error): assigning to ``op.<name>`` or ``setattr(op, ...)`` in a migration script —
  seed 004, "current transaction is aborted" for the whole migration.
- ``execute-after-batch-alter`` (warning): raw ``op.execute`` touching a table after ``batch_alter_table`` of it.
- ``not-null-without-default`` (error): ``ADD COLUMN ... NOT NULL`` without ``DEFAULT`` on an existing table.
- ``unique-index-on-existing-table`` (warning): a unique index/constraint on a table the migration does not create;
  existing duplicates make it fail on production data only — seed 002.
- ``squawk-missing`` (warning): no squawk binary on PATH or beside this Python, so squawk's rules did not run
  (``--fail-on warning`` / ``fail_on: warning`` make it fail, like any warning).
"""

from __future__ import annotations

import ast as pyast
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from deploypipe.core.findings import Finding

__all__ = ["lint_python", "lint_sql", "position", "squawk", "squawk_binary", "squawk_missing"]

_SKIP = re.compile(r"\s+|--[^\n]*|/\*.*?\*/", re.S)

DEFAULT_SQUAWK_EXCLUDES = ("require-timeout-settings", "require-lock-timeout", "require-statement-timeout",
                           "prefer-robust-stmts", "prefer-text-field", "prefer-bigint-over-int",
                           "prefer-identity", "prefer-timestamptz")


def squawk_binary() -> str | None:
    """squawk on PATH, else beside this Python (the squawk-cli wheel's script in an unactivated venv); None: missing."""
    return shutil.which("squawk", path=os.pathsep.join([os.environ.get("PATH", ""), str(Path(sys.executable).parent)]))


def squawk_missing(subject: str = "", path: str = "") -> Finding:
    """The warning for SQL that squawk could not check: a missing tool is never a silent pass."""
    return Finding("squawk-missing", "warning", "squawk is not installed, so its migration rules did not run",
                   "install deploypipe with its dependencies (squawk-cli) or put squawk on PATH; `squawk: false` "
                   "turns squawk off on purpose", subject=subject, path=path)


def squawk(sql_text: str, migration: str, excludes: Iterable[str] = DEFAULT_SQUAWK_EXCLUDES) -> list[Finding]:
    """squawk's findings for one migration's SQL; one ``squawk-missing`` warning when squawk is not installed."""
    binary = squawk_binary()
    if binary is None:
        return [squawk_missing("migration " + migration)]
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as handle:
        handle.write(sql_text)
        path = handle.name
    try:
        result = subprocess.run([binary, "--reporter", "json", *[f"--exclude={e}" for e in excludes], path],
                                capture_output=True, text=True)
    finally:
        Path(path).unlink(missing_ok=True)
    try:
        items = json.loads(result.stdout or "[]")
    except json.JSONDecodeError:
        return [Finding("squawk-unreadable", "warning", f"squawk gave no JSON: {result.stderr.strip()[:200]}",
                        subject="migration " + migration)]
    return [Finding(f"squawk:{i['rule_name']}", "error" if i.get("level") == "Error" else "warning", i["message"],
                    i.get("help") or "", subject="migration " + migration, line=i.get("line", 0) + 1) for i in items]


def lint_sql(sql_text: str, migration: str, available: dict[str, set[str]] | None) -> list[Finding]:
    """Own rules over SQL, parsed with PostgreSQL's parser (pglast)."""
    from pglast import ast, parse_sql
    from pglast.parser import ParseError

    try:
        statements = parse_sql(sql_text)
    except ParseError as exc:
        return [Finding("sql-syntax", "error", f"PostgreSQL cannot parse it: {exc}", subject="migration " + migration)]
    findings: list[Finding] = []
    created: set[str] = set()
    subject = "migration " + migration
    encoded = sql_text.encode("utf-8")  # pglast's locations are byte offsets into the UTF-8 text
    for raw in statements:
        stmt = raw.stmt
        at = _At(subject, *position(sql_text, len(encoded[:raw.stmt_location or 0].decode("utf-8", "replace"))))
        if isinstance(stmt, ast.CreateStmt):
            created.add(_relname(stmt.relation))
        elif isinstance(stmt, ast.CreateExtensionStmt):
            version = next((str(o.arg.sval if hasattr(o.arg, "sval") else o.arg) for o in stmt.options or ()
                            if o.defname == "new_version"), None)
            if version and available is not None:
                offered = available.get(stmt.extname or "")
                if offered is None:
                    findings.append(Finding("extension-unavailable", "error", f"extension {stmt.extname} is not "
                                            "available on the production server", "install it on the server or drop "
                                            "the migration", subject=at.subject, line=at.line, col=at.col))
                elif version not in offered:
                    findings.append(Finding(
                        "extension-version-unavailable", "error",
                        f'CREATE EXTENSION {stmt.extname} WITH VERSION "{version}": the production server offers '
                        f"{', '.join(sorted(offered))} (it would fail with 22023 'no installation script')",
                        "drop the VERSION clause (take the server's default) or pin a version the server has",
                        subject=at.subject, line=at.line, col=at.col))
        elif isinstance(stmt, ast.AlterTableStmt) and _relname(stmt.relation) not in created:
            for cmd in stmt.cmds or ():
                column = getattr(cmd, "def_", None)
                if isinstance(column, ast.ColumnDef):
                    kinds = {c.contype for c in column.constraints or ()}
                    from pglast.enums import ConstrType

                    if ConstrType.CONSTR_NOTNULL in kinds and ConstrType.CONSTR_DEFAULT not in kinds:
                        findings.append(Finding("not-null-without-default", "error",
                                                f"ADD COLUMN {_relname(stmt.relation)}.{column.colname} NOT NULL "
                                                "without a DEFAULT fails on a table that has rows",
                                                "add it nullable, backfill, then SET NOT NULL; or give it a DEFAULT",
                                                subject=at.subject, line=at.line, col=at.col))
                if isinstance(column, ast.Constraint) and column.contype is not None and \
                        column.contype.name == "CONSTR_UNIQUE":
                    findings.append(_unique(_relname(stmt.relation), at))
        elif isinstance(stmt, ast.IndexStmt) and stmt.unique and _relname(stmt.relation) not in created:
            findings.append(_unique(_relname(stmt.relation), at))
    return findings


def position(text: str, offset: int) -> tuple[int, int]:
    """1-based (line, column) of the first code at or after character ``offset`` (blanks and comments skipped)."""
    while (match := _SKIP.match(text, offset)) and match.end() > offset:
        offset = match.end()
    return text.count("\n", 0, offset) + 1, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _relname(relation: Any) -> str:
    """The table a statement names (pglast gives it a RangeVar)."""
    return str(getattr(relation, "relname", "") or "")


@dataclass(frozen=True)
class _At:
    subject: str
    line: int
    col: int


def _unique(table: str, at: _At) -> Finding:
    return Finding("unique-index-on-existing-table", "warning",
                   f"a unique index on existing table {table} fails if production already has duplicates",
                   "the dry run on a copy of production data proves it; deduplicate first if it fails",
                   subject=at.subject, line=at.line, col=at.col)


def lint_python(path: Path, migration: str) -> list[Finding]:
    """AST rules over an Alembic migration script; findings point at the script's file and line."""
    subject = "migration " + migration
    try:
        tree = pyast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except SyntaxError as exc:
        return [Finding("python-syntax", "error", exc.msg, subject=subject, path=str(path), line=exc.lineno,
                        col=exc.offset)]
    findings: list[Finding] = []
    for node in pyast.walk(tree):
        for target in _assigned(node):
            if isinstance(target, pyast.Attribute) and isinstance(target.value, pyast.Name) and target.value.id == "op":
                findings.append(_monkeypatch(path, target, f"op.{target.attr} = ...", subject))
        if isinstance(node, pyast.Call) and isinstance(node.func, pyast.Name) and node.func.id == "setattr" and \
                node.args and isinstance(node.args[0], pyast.Name) and node.args[0].id == "op":
            findings.append(_monkeypatch(path, node, "setattr(op, ...)", subject))
    for function in (n for n in pyast.walk(tree) if isinstance(n, pyast.FunctionDef)):
        findings += _execute_after_batch(path, function, subject)
    return findings


def _assigned(node: pyast.AST) -> list[pyast.expr]:
    if isinstance(node, pyast.Assign):
        return list(node.targets)
    if isinstance(node, (pyast.AnnAssign, pyast.AugAssign)):
        return [node.target]
    return []


def _execute_after_batch(path: Path, function: pyast.FunctionDef, subject: str) -> list[Finding]:
    findings: list[Finding] = []
    batched: set[str] = set()
    for node in pyast.walk(function):
        if isinstance(node, pyast.With):
            for item in node.items:
                call = item.context_expr
                if isinstance(call, pyast.Call) and getattr(call.func, "attr", "") == "batch_alter_table" and \
                        call.args and isinstance(call.args[0], pyast.Constant):
                    batched.add(str(call.args[0].value))
        if isinstance(node, pyast.Call) and isinstance(node.func, pyast.Attribute) and node.func.attr == "execute" \
                and isinstance(node.func.value, pyast.Name) and node.func.value.id == "op":
            text = pyast.unparse(node)
            for table in batched:
                if table in text:
                    findings.append(Finding("execute-after-batch-alter", "warning",
                                            f"op.execute touches {table} after batch_alter_table({table!r}); on "
                                            "PostgreSQL both run in one transaction",
                                            "do it inside the batch, or in a separate migration", subject=subject,
                                            path=str(path), line=node.lineno, col=node.col_offset + 1))
    return findings


def _monkeypatch(path: Path, node: pyast.expr, what: str, subject: str) -> Finding:
    return Finding("alembic-op-monkeypatch", "error",
                   f"{what} replaces Alembic's operation for everything that runs after it; one failed statement "
                   "then aborts the transaction and every later operation fails with 'current transaction is aborted'",
                   "call the safe helper explicitly where needed instead of patching op", subject=subject,
                   path=str(path), line=node.lineno, col=node.col_offset + 1)
