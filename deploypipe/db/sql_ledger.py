"""Plain SQL migration files and the ledger deploypipe keeps of them: table ``deploypipe_sql_migrations``.

A directory of ``*.sql`` files has no state of its own, so deploypipe records each file it applies: its name,
the SHA-256 of its bytes and when. Files apply in file-name order, each in its own transaction together with its
ledger row (so a file is either applied and recorded, or neither). A file is pending while the ledger lacks it.
An applied file whose bytes changed since is a finding, as is a recorded file missing from the directory.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable

import psycopg

from deploypipe.core.findings import Finding
from deploypipe.db.pg import table_exists
from deploypipe.db.script_error import located, up_to
from deploypipe.errors import StageErrored

__all__ = ["LEDGER", "LEDGER_DDL", "LedgerRow", "apply_sql", "disk_files", "file_checksum", "ledger_rows",
           "sql_status"]

LEDGER = "deploypipe_sql_migrations"
LEDGER_DDL = f"""CREATE TABLE IF NOT EXISTS {LEDGER} (
    file_name   TEXT PRIMARY KEY,
    sha256      CHAR(64) NOT NULL,
    applied_at  TIMESTAMPTZ NOT NULL DEFAULT now()
)"""


@dataclass(frozen=True)
class LedgerRow:
    file_name: str
    sha256: str
    applied_at: datetime


def disk_files(sql_dir: Path) -> dict[str, Path]:
    """The directory's ``*.sql`` files by name, in file-name order (the order they apply in)."""
    if not sql_dir.is_dir():
        raise StageErrored(f"{sql_dir} is not a directory", hint="set sql_dir to the directory of .sql files")
    return {p.name: p for p in sorted(sql_dir.glob("*.sql"))}


def file_checksum(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def ledger_rows(conn: psycopg.Connection) -> dict[str, LedgerRow]:
    """The ledger by file name; empty when deploypipe never applied a file here."""
    if not table_exists(conn, LEDGER):
        return {}
    return {row[0]: LedgerRow(*row) for row in
            conn.execute(f"select file_name, sha256, applied_at from {LEDGER} order by file_name")}


def sql_status(conn: psycopg.Connection, sql_dir: Path) -> tuple[list[Finding], dict]:
    """Findings and state (applied, pending) of the ledger against the directory."""
    on_disk = disk_files(sql_dir)
    rows = ledger_rows(conn)
    findings: list[Finding] = []
    for name, row in rows.items():
        path = on_disk.get(name)
        if path is None:
            findings.append(Finding("sql-missing-on-disk", "error", f"applied {row.applied_at:%Y-%m-%d %H:%M} but "
                                    "not in this repository (deploying an older commit?)",
                                    "deploy a commit that contains it", subject="migration " + name))
        elif file_checksum(path) != row.sha256.strip():
            findings.append(Finding("sql-checksum-mismatch", "warning", f"the file changed after it was applied on "
                                    f"{row.applied_at:%Y-%m-%d %H:%M}: production has the old version",
                                    "never edit an applied file: restore it and put the change in a new file",
                                    subject="migration " + name))
    pending = [name for name in on_disk if name not in rows]
    late = [name for name in pending if rows and name < max(rows)]
    for name in late:
        findings.append(Finding("sql-out-of-order", "warning", f"pending, but sorts before {max(rows)}, which is "
                                "already applied: it runs after it", "name new files so they sort last",
                                subject="migration " + name))
    if pending:
        findings.append(Finding("sql-pending", "info", f"{len(pending)} pending: {', '.join(pending)}",
                                "they run in db.dry_run on a staging copy, then in db.migrate"))
    state = {"tool": "sql", "applied": sorted(rows), "pending": pending, "pending_count": len(pending)}
    return findings, state


def apply_sql(conn: psycopg.Connection, sql_dir: Path, *, through: str | None = None,
              say: Callable[[str], None] = print) -> list[str]:
    """Apply the pending files (up to and including ``through``), each with its ledger row in one transaction, on
    a connection outside any transaction; returns their names. ApplyError on the first failure (rolled back)."""
    on_disk = disk_files(sql_dir)
    names = up_to(list(on_disk), through, sql_dir)
    with conn.transaction():
        conn.execute(LEDGER_DDL)
    applied_before = ledger_rows(conn)
    applied = []
    for name in (n for n in names if n not in applied_before):
        data = on_disk[name].read_bytes()
        script = data.decode("utf-8")
        say(f"Applying migration `{name}`")
        try:
            with conn.transaction():
                conn.execute(data)  # no parameters: the whole file as one simple query
                conn.execute(f"insert into {LEDGER} (file_name, sha256) values (%s, %s)",
                             (name, hashlib.sha256(data).hexdigest()))
        except psycopg.Error as exc:
            raise located(exc, name, script) from None
        applied.append(name)
    return applied
