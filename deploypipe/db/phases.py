"""Each migration's phase: *expand* (the live release keeps working on the new schema) or *contract* (it may not).

A release changes code and schema at different moments: on Render the new release goes live minutes after
a pre-deploy migration, and the old release serves on the new schema in between. A statement is *contract* when
the old release can break on the schema it leaves behind; everything else is *expand*. The rules, by statement:

==============================================  ==========================================================
contract                                        why
==============================================  ==========================================================
``DROP TABLE/VIEW/TYPE/FUNCTION/SEQUENCE ...``  the old release may still read or call it
``ALTER TABLE ... DROP COLUMN``                 the old release may still select it
``... RENAME [COLUMN|TO|CONSTRAINT]``           the old name disappears
``ALTER COLUMN ... TYPE``                       the old release reads and writes the old type
``ALTER COLUMN ... SET NOT NULL``               the old release may insert rows without it
``ALTER COLUMN ... DROP DEFAULT``               the old release may rely on the default
``DROP CONSTRAINT``                             the old release may rely on it (e.g. ON CONFLICT)
``ADD COLUMN ... NOT NULL`` without default     the old release inserts rows without it
``ADD CONSTRAINT`` (not ``NOT VALID``)          the old release may write rows it refuses
``TRUNCATE``, ``DELETE``                        data the old release serves disappears
``CREATE INDEX`` without ``CONCURRENTLY``       on a big table: a lock, not a break (``lock_only``)
==============================================  ==========================================================

Statements on a table created earlier in the same migration are expand (nothing old reads it). Anything else
(``CREATE TABLE``, nullable or defaulted ``ADD COLUMN``, ``CREATE INDEX CONCURRENTLY``, ``UPDATE`` backfills,
``INSERT``, ``SET``, extensions, comments, grants) is expand.

A migration is contract when any of its statements is, unless its source carries an override with a reason::

    -- deploypipe: expand (reason: the column was unused since release 41)
    # deploypipe: expand (reason: ...)          (in an Alembic script)

An override without a reason is refused. In a release's chain every expand migration must come before every
contract one (:func:`order_problem`): expand runs before the deploy, contract after the new release is verified.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from deploypipe.db.lint import position

__all__ = ["MigrationPhase", "OverrideError", "Phase", "StatementPhase", "classify", "order_problem",
           "override_of", "split_alembic_sql"]

Phase = Literal["expand", "contract"]

_OVERRIDE = re.compile(r"^\s*(?:--|#)\s*deploypipe:\s*expand\b(?P<rest>.*)$", re.M | re.I)
_REASON = re.compile(r"^\s*\(\s*reason\s*:\s*(?P<reason>[^)]*\S)\s*\)\s*$", re.I)
_ALEMBIC_STEP = re.compile(r"^-- Running upgrade\s+(?:(?P<down>\S+)\s+)?->\s+(?P<rev>\S+)\s*$", re.M)
_DROPPED_KINDS = {"OBJECT_TABLE": "table", "OBJECT_VIEW": "view", "OBJECT_MATVIEW": "materialized view",
                  "OBJECT_TYPE": "type", "OBJECT_FUNCTION": "function", "OBJECT_SEQUENCE": "sequence",
                  "OBJECT_SCHEMA": "schema", "OBJECT_PROCEDURE": "procedure", "OBJECT_DOMAIN": "domain"}


class OverrideError(ValueError):
    """A ``deploypipe: expand`` marker without its required reason."""


@dataclass(frozen=True)
class StatementPhase:
    """One statement's phase; ``rule`` names why it is contract (empty for expand)."""

    phase: Phase
    rule: str
    reason: str
    line: int
    lock_only: bool = False


@dataclass(frozen=True)
class MigrationPhase:
    """A migration's phase from its statements, and the override that made it expand, if any."""

    migration: str
    statements: tuple[StatementPhase, ...]
    override: str | None = None

    @property
    def contract(self) -> tuple[StatementPhase, ...]:
        return tuple(s for s in self.statements if s.phase == "contract")

    @property
    def phase(self) -> Phase:
        return "contract" if self.contract and self.override is None else "expand"

    def summary(self) -> str:
        """``expand``, ``expand (override: reason)`` or ``contract: drop-column notes.author (line 3)``."""
        if self.override is not None:
            return f"expand (override: {self.override})" if self.contract else "expand"
        if not self.contract:
            return "expand"
        return "contract: " + "; ".join(f"{s.rule} {s.reason} (line {s.line})" for s in self.contract)


def override_of(source: str) -> str | None:
    """The reason of a ``deploypipe: expand (reason: ...)`` marker in a migration's source, None without one."""
    found = _OVERRIDE.search(source)
    if found is None:
        return None
    reason = _REASON.match(found.group("rest"))
    if reason is None:
        line = source.count("\n", 0, found.start()) + 1
        raise OverrideError(f"line {line}: 'deploypipe: expand' needs a reason; write "
                            f"'-- deploypipe: expand (reason: why the live release keeps working)'")
    return reason.group("reason")


def classify(migration: str, sql_text: str, *, source: str | None = None,
             big_tables: Iterable[str] = ()) -> MigrationPhase:
    """Classify every statement of ``sql_text`` (the SQL as it will run); ``source`` holds the override, if any.

    ``big_tables`` are the tables where a non-concurrent index is a lock worth naming. Raises ``OverrideError``
    for an override without a reason and pglast's ``ParseError`` for SQL PostgreSQL cannot parse.
    """
    from pglast import parse_sql

    override = override_of(source if source is not None else sql_text)
    encoded = sql_text.encode("utf-8")
    created: set[str] = set()
    big = set(big_tables)
    statements = []
    for raw in parse_sql(sql_text):
        offset = len(encoded[:raw.stmt_location or 0].decode("utf-8", "replace"))
        line = position(sql_text, offset)[0]
        statements.extend(_statement(raw.stmt, line, created, big))
    return MigrationPhase(migration, tuple(statements), override)


def _statement(stmt: Any, line: int, created: set[str], big: set[str]) -> list[StatementPhase]:
    from pglast import ast

    def contract(rule: str, reason: str, lock_only: bool = False) -> list[StatementPhase]:
        return [StatementPhase("contract", rule, reason, line, lock_only)]

    expand = [StatementPhase("expand", "", "", line)]
    if isinstance(stmt, ast.CreateStmt):
        created.add(_name(stmt.relation))
        return expand
    if isinstance(stmt, ast.DropStmt):
        kind = _DROPPED_KINDS.get(getattr(stmt.removeType, "name", ""))
        return contract(f"drop-{kind.replace(' ', '-')}", _objects(stmt.objects)) if kind else expand
    if isinstance(stmt, ast.RenameStmt):
        table = _name(stmt.relation) if stmt.relation is not None else ""
        if table in created:
            return expand
        old = f"{table}.{stmt.subname}" if table and stmt.subname else table or stmt.subname or _objects([stmt.object])
        return contract("rename", f"{old} -> {stmt.newname}")
    if isinstance(stmt, ast.TruncateStmt):
        return contract("truncate", ", ".join(_name(r) for r in stmt.relations or ()))
    if isinstance(stmt, ast.DeleteStmt):
        return contract("delete", _name(stmt.relation))
    if isinstance(stmt, ast.IndexStmt):
        table = _name(stmt.relation)
        if stmt.concurrent or table in created or table not in big:
            return expand
        return contract("index-lock", f"CREATE INDEX on big table {table} blocks its writes while it builds; "
                                      f"use CREATE INDEX CONCURRENTLY", lock_only=True)
    if isinstance(stmt, ast.AlterTableStmt):
        table = _name(stmt.relation)
        if table in created:
            return expand
        found = [phase for cmd in stmt.cmds or () for phase in _alter(cmd, table, line)]
        return found or expand
    return expand


def _alter(cmd: Any, table: str, line: int) -> list[StatementPhase]:
    from pglast import ast
    from pglast.enums import AlterTableType, ConstrType

    subtype = cmd.subtype
    column = f"{table}.{cmd.name}" if cmd.name else table

    def contract(rule: str, reason: str) -> list[StatementPhase]:
        return [StatementPhase("contract", rule, reason, line)]

    if subtype == AlterTableType.AT_DropColumn:
        return contract("drop-column", column)
    if subtype == AlterTableType.AT_AlterColumnType:
        return contract("change-type", column)
    if subtype == AlterTableType.AT_SetNotNull:
        return contract("set-not-null", column)
    if subtype == AlterTableType.AT_ColumnDefault and cmd.def_ is None:
        return contract("drop-default", column)
    if subtype == AlterTableType.AT_DropConstraint:
        return contract("drop-constraint", f"{cmd.name} on {table}")
    if subtype == AlterTableType.AT_AddColumn and isinstance(cmd.def_, ast.ColumnDef):
        kinds = {c.contype for c in cmd.def_.constraints or ()}
        if ConstrType.CONSTR_NOTNULL in kinds and ConstrType.CONSTR_DEFAULT not in kinds:
            return contract("add-not-null-column", f"{table}.{cmd.def_.colname}")
    if subtype == AlterTableType.AT_AddConstraint and isinstance(cmd.def_, ast.Constraint) and \
            not cmd.def_.skip_validation:
        kind = cmd.def_.contype.name.removeprefix("CONSTR_").lower() if cmd.def_.contype else "constraint"
        name = cmd.def_.conname or kind
        return contract("add-constraint", f"{name} on {table}")
    return []


def _name(relation: Any) -> str:
    return str(getattr(relation, "relname", "") or "")


def _objects(objects: Any) -> str:
    """Dotted names of DROP's objects: ``[[String('notes')]]`` -> ``notes``."""
    names = []
    for obj in objects or ():
        parts = obj if isinstance(obj, (list, tuple)) else (
            getattr(obj, "objname", None) or getattr(obj, "names", None) or (obj,))
        names.append(".".join(str(getattr(p, "sval", None) or getattr(p, "name", None)) for p in parts
                              if getattr(p, "sval", None) or getattr(p, "name", None)))
    return ", ".join(n for n in names if n) or "?"


def split_alembic_sql(offline_sql: str) -> list[tuple[str, str]]:
    """Alembic's ``upgrade --sql`` output cut per migration at its ``-- Running upgrade a -> b`` lines."""
    marks = list(_ALEMBIC_STEP.finditer(offline_sql))
    ends = [mark.start() for mark in marks[1:]] + [len(offline_sql)]
    return [(mark.group("rev"), offline_sql[mark.end():end]) for mark, end in zip(marks, ends, strict=False)]


def order_problem(chain: Sequence[MigrationPhase]) -> str | None:
    """Why a chain cannot run in two phases (a contract migration before an expand one), None when it can."""
    first_contract = next((m for m in chain if m.phase == "contract"), None)
    if first_contract is None:
        return None
    later = [m for m in chain[chain.index(first_contract) + 1:] if m.phase == "expand"]
    if not later:
        return None
    return (f"migration {first_contract.migration} is contract ({first_contract.summary().removeprefix('contract: ')})"
            f" but comes before expand migration {later[0].migration}; contract migrations run only after the new "
            f"release is verified, so split the release: ship {later[0].migration} (and every expand migration) "
            f"first, then {first_contract.migration} in a later release, or move the contract statements into a "
            f"migration after the last expand one")
