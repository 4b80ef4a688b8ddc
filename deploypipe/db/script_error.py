"""What deploypipe's own appliers share: how far to apply (``--through``), and a failed script's error with the
statement it failed on, found by its position."""

from __future__ import annotations

from pathlib import Path

import psycopg

__all__ = ["ApplyError", "located", "up_to"]


class ApplyError(Exception):
    """A migration deploypipe applies itself failed or was refused; ``statement`` is the failing one, if known."""

    def __init__(self, message: str, *, statement: str = "", hint: str = ""):
        super().__init__(message)
        self.message, self.statement, self.hint = message, statement, hint


def up_to(names: list[str], through: str | None, directory: Path) -> list[str]:
    """``names`` (in the order they apply) up to and including ``through`` (None: all); ApplyError when
    ``directory`` has no ``through``."""
    if through is None:
        return names
    if through not in names:
        raise ApplyError(f"migration {through} is not in {directory}")
    return names[:names.index(through) + 1]


def _statement_at(script: str, position: int) -> str:
    """The statement of ``script`` holding character ``position`` (1-based, as PostgreSQL reports it)."""
    from pglast.parser import ParseError, parse_sql

    encoded = script.encode("utf-8")
    at = len(script[:position - 1].encode("utf-8"))
    try:
        statements = parse_sql(script)
    except ParseError:
        return ""
    for raw in statements:
        start = raw.stmt_location or 0
        end = start + raw.stmt_len if raw.stmt_len else len(encoded)
        if start <= at < end:
            return " ".join(encoded[start:end].decode("utf-8", "replace").split())
    return ""


def located(exc: psycopg.Error, migration: str, script: str) -> ApplyError:
    """``exc`` raised by ``script`` of ``migration`` as an ApplyError naming the failing statement when known."""
    diag = exc.diag
    position = int(diag.statement_position) if diag.statement_position else 0
    statement = _statement_at(script, position) if position else ""
    return ApplyError(f"migration {migration} failed: {diag.message_primary or exc}", statement=statement)
