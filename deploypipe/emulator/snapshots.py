"""Snapshots of a Postgres for the local Render's point-in-time recovery: taken, listed, pruned to the window.

A snapshot is a ``pg_dump -Fc`` read in one exported snapshot and labelled with
the emulator's clock right after the export (so it holds every write committed
before its label), stored as ``<data_dir>/recovery/<postgres id>/<epoch µs>.dump``.
When they are taken, and what a recovery makes of them: ``recovery.py``.
Times are integer epoch microseconds, so a restore point read back from its
ISO text compares exactly with the snapshot taken at that moment.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import psycopg
import structlog

from deploypipe.core.embedded_pg import pg_bin
from deploypipe.emulator.records import PostgresRec
from deploypipe.emulator.state import Emulator

__all__ = ["iso_us", "parse_us", "run_tool", "snapshot_dir", "snapshots", "take_snapshot", "to_us", "window"]

log = structlog.get_logger("deploypipe.emulator")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def to_us(moment: float | datetime) -> int:
    if not isinstance(moment, datetime):
        moment = datetime.fromtimestamp(moment, UTC)
    return (moment - _EPOCH) // _US


def iso_us(us: int) -> str:
    return (_EPOCH + us * _US).isoformat().replace("+00:00", "Z")


def parse_us(text: Any) -> int:
    if not isinstance(text, str) or not text.strip():
        raise ValueError(text)
    moment = datetime.fromisoformat(text.strip())
    return to_us(moment if moment.tzinfo else moment.replace(tzinfo=UTC))


def _tool_target(url: str) -> tuple[str, dict[str, str]]:
    """(URL without its password, environment with PGPASSWORD): the password stays out of ``ps``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url, dict(os.environ)
    userinfo, _, host = parts.netloc.rpartition("@")
    netloc = f"{userinfo.split(':', 1)[0]}@{host}"
    return (urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)),
            {**os.environ, "PGPASSWORD": unquote(parts.password)})


def run_tool(tool: str, args: list[str], url: str) -> str:
    """Run a PostgreSQL tool against ``url``; returns its last error lines ('' when it succeeded)."""
    target, env = _tool_target(url)
    done = subprocess.run([pg_bin(tool), "--no-password", *args, "-d", target], env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, check=False)
    if done.returncode == 0:
        return ""
    return " ".join(done.stderr.decode("utf-8", "replace").strip().splitlines()[-3:]) or f"exit {done.returncode}"


def snapshot_dir(emu: Emulator, db: PostgresRec) -> Path:
    assert emu.data_dir is not None
    return emu.data_dir / "recovery" / db.id


def snapshots(emu: Emulator, db: PostgresRec) -> list[int]:
    """The times (epoch microseconds) of ``db``'s snapshots, oldest first."""
    if emu.data_dir is None or not snapshot_dir(emu, db).is_dir():
        return []
    return sorted(int(path.stem) for path in snapshot_dir(emu, db).glob("*.dump") if path.stem.isdigit())


def take_snapshot(emu: Emulator, db: PostgresRec) -> int | None:
    """Dump ``db`` now (one exported snapshot); returns the snapshot's time in epoch microseconds, None on failure."""
    directory = snapshot_dir(emu, db)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    at, partial = 0, directory / f".{secrets.token_hex(4)}.partial"
    try:
        with psycopg.connect(db.url, connect_timeout=10) as conn:
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
            row = conn.execute("select pg_export_snapshot()").fetchone()
            at = to_us(emu.clock())  # after the export: the dump holds every write committed before this moment
            problem = run_tool("pg_dump", ["-Fc", f"--snapshot={row[0] if row else ''}", "-f", str(partial)], db.url)
    except psycopg.Error as exc:
        problem = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if problem:
        partial.unlink(missing_ok=True)
        log.warning("emulator_snapshot_failed", postgres_id=db.id, error=problem.replace(db.password, "***")
                    if db.password else problem)
        return None
    os.replace(partial, directory / f"{at}.dump")
    log.info("emulator_snapshot_taken", postgres_id=db.id, at=iso_us(at))
    return at


def window(emu: Emulator, db: PostgresRec) -> tuple[int | None, list[int]]:
    """(startsAt, snapshots kept) after pruning snapshots the window no longer needs; startsAt None: no snapshot."""
    now = to_us(emu.clock())
    window_start = now - int(emu.recovery.window_days * 86400 * 1_000_000)
    kept = snapshots(emu, db)
    covering = [at for at in kept if at <= window_start]
    for at in covering[:-1]:  # the newest snapshot before the window still serves the window's first moments
        (snapshot_dir(emu, db) / f"{at}.dump").unlink(missing_ok=True)
    kept = covering[-1:] + [at for at in kept if at > window_start]
    if not kept:
        return None, []
    return max(kept[0], window_start), kept
