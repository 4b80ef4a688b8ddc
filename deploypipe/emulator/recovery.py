"""Postgres point-in-time recovery on the local Render: snapshots at restore points, new databases cloned from them.

What "the data at restoreTime" is here
--------------------------------------
Render replays WAL and can restore any moment of its window. The local Render keeps *snapshots* instead: a
``pg_dump -Fc`` read in one exported snapshot and labelled with the emulator's clock right after the export, taken

- every time ``GET /postgres/{id}/recovery`` answers (deploypipe asks right before it journals a restore point, so a
  clone at that restore point holds exactly the data of that moment);
- by ``POST /postgres/{id}/recovery`` when the database has no snapshot yet (that opens its window);
- by ``snapshots.take_snapshot`` from Python (tests).

A recovery restores the newest snapshot taken at or before ``restoreTime``: writes made after that snapshot and
before ``restoreTime`` are NOT in the clone (Render's would hold them). ``startsAt`` is the oldest snapshot kept (or
the window's start, if an older snapshot still covers it). Snapshots live in ``<data_dir>/recovery/<postgres id>/``
as ``<epoch microseconds>.dump``, survive restarts, and are pruned once the window no longer needs them.

Limits (knobs, ``emulator.recovery``: ``min_age_s``, ``window_days``, ``creating_s``; see ``records.PitrState``):
a restoreTime before ``startsAt`` or within the last ``min_age_s`` seconds (Render: 600) is a 400 with Render's
``{id, message}``. Without a data dir, or for a database that is not ``available``, recovery is NOT_AVAILABLE.

A clone is a NEW database: a new id, name (``restoreName``), role and password, in the embedded PostgreSQL under
``<data_dir>/pg``. The POST answers 200 with its postgresDetail (status ``creating``); the copy runs in a thread, and
the clone turns ``available`` (or ``recovery_failed``) once ``creating_s`` has passed on the emulator's clock and the
copy is done (a read after that moment waits for the copy). ``DELETE /postgres/{id}`` answers 204: it drops a
database the local Render created (a clone, a provisioned Blueprint database) and only forgets an attached one.
Clones are not kept across restarts: the local Render drops them when it stops.
"""

from __future__ import annotations

import secrets
import shutil
import threading
from pathlib import Path
from typing import Any

import psycopg
import structlog
from psycopg import sql
from starlette.responses import JSONResponse, Response

from deploypipe.core.embedded_pg import EmbeddedPostgres, start_embedded
from deploypipe.emulator.ids import new_id
from deploypipe.emulator.records import PostgresRec
from deploypipe.emulator.shapes import error, postgres_json
from deploypipe.emulator.snapshots import (
    iso_us,
    parse_us,
    run_tool,
    snapshot_dir,
    snapshots,
    take_snapshot,
    to_us,
    window,
)
from deploypipe.emulator.state import Emulator

__all__ = ["advance", "delete_postgres", "recover", "recovery_info", "recovery_routes"]

log = structlog.get_logger("deploypipe.emulator")

COPY_WAIT_S = 600.0  # how long a read past a clone's creating period waits for its copy
PLANS = ("free", "starter", "standard", "pro", "pro_plus", "custom", "basic_256mb", "basic_1gb", "basic_4gb", "pro_4gb",
         "pro_8gb", "pro_16gb", "pro_32gb", "pro_64gb", "pro_128gb", "pro_192gb", "pro_256gb", "pro_384gb",
         "pro_512gb", "accelerated_16gb", "accelerated_32gb", "accelerated_64gb", "accelerated_128gb",
         "accelerated_256gb", "accelerated_384gb", "accelerated_512gb", "accelerated_768gb", "accelerated_1024gb")
_TEXT_FIELDS = ("restoreName", "plan", "environmentId", "datadogApiKey", "datadogSite")


# -- the embedded server holding the clones, and recovery info -----------------------------------------------------
def _server(emu: Emulator) -> EmbeddedPostgres:
    """The embedded PostgreSQL under ``<data_dir>/pg`` (clones live there), started once; clones dropped at close."""
    state = emu.recovery
    if state.server is None:
        assert emu.data_dir is not None
        state.server = start_embedded(emu.data_dir / "pg")
        emu.on_close.append(state.server.stop)
        emu.on_close.append(lambda: _drop_clones(emu))  # on_close runs last-first: before the server stops
    return state.server


def recovery_info(emu: Emulator, db: PostgresRec) -> dict[str, Any]:
    """Render's recovery info; a database that can recover is snapshotted first (see the module docstring)."""
    if emu.data_dir is None or db.status not in ("available", "creating"):
        return {"recoveryStatus": "NOT_AVAILABLE"}
    if db.status == "creating":
        return {"recoveryStatus": "BACKUP_NOT_READY"}
    take_snapshot(emu, db)
    starts_at, _ = window(emu, db)
    if starts_at is None:
        return {"recoveryStatus": "BACKUP_NOT_READY"}
    return {"recoveryStatus": "AVAILABLE", "startsAt": iso_us(starts_at)}




# -- recovery -------------------------------------------------------------------------------------------------------
class _Copy(threading.Thread):
    """Restores a snapshot into a new database owned by a new role (superuser only while restoring)."""

    def __init__(self, server: EmbeddedPostgres, clone: PostgresRec, dump: Path | None):
        super().__init__(name=f"recovery-{clone.id}", daemon=True)
        self.server, self.clone, self.dump = server, clone, dump
        self.ok = False

    def run(self) -> None:
        clone, role = self.clone, sql.Identifier(self.clone.user)
        if self.dump is None:  # an injected failure (fail_recovery)
            log.warning("emulator_recovery_failed", postgres_id=clone.id, error="injected fault")
            return
        try:
            with psycopg.connect(self.server.url(), autocommit=True) as conn:
                conn.execute(sql.SQL("create role {} login superuser password {}").format(
                    role, sql.Literal(clone.password)))
                try:  # restored as the clone's role, so it owns every object (extensions included)
                    conn.execute(sql.SQL("create database {} owner {}").format(sql.Identifier(clone.database), role))
                    problem = run_tool("pg_restore", ["--no-owner", "--no-acl", "--exit-on-error",
                                                      "--single-transaction", str(self.dump)], clone.url)
                finally:
                    conn.execute(sql.SQL("alter role {} nosuperuser").format(role))
        except psycopg.Error as exc:
            problem = str(exc).strip() or type(exc).__name__
        self.ok = not problem
        if problem:
            log.warning("emulator_recovery_failed", postgres_id=clone.id, error=problem)


def _body_problem(body: dict[str, Any]) -> str | None:
    if "restoreTime" not in body:
        return "restoreTime is required: the point in time to restore to, e.g. 2026-01-31T12:00:00Z"
    for name in _TEXT_FIELDS:
        if name in body and not isinstance(body[name], str):
            return f"{name} must be a string, got {type(body[name]).__name__}"
    if body.get("restoreName") == "":
        return "restoreName must not be empty: it names the new database"
    if body.get("plan") not in (None, *PLANS):
        return f"plan {body['plan']!r} is not a Postgres plan"
    return None


def recover(emu: Emulator, db: PostgresRec, body: dict[str, Any]) -> Response:
    """``POST /postgres/{id}/recovery``: a new database holding ``db``'s data at ``restoreTime``."""
    problem = _body_problem(body)
    if problem:
        return error(400, problem)
    try:
        restore = parse_us(body["restoreTime"])
    except (ValueError, TypeError):
        return error(400, f"restoreTime must be an ISO 8601 date-time, e.g. 2026-01-31T12:00:00Z, got "
                          f"{body['restoreTime']!r}")
    if emu.data_dir is None or db.status != "available":
        return error(400, f"point-in-time recovery is not available for postgres {db.id} (status {db.status})")
    if not snapshots(emu, db):
        take_snapshot(emu, db)
    starts_at, kept = window(emu, db)
    now = to_us(emu.clock())
    latest = now - int(emu.recovery.min_age_s * 1_000_000)
    if starts_at is None:
        return error(400, f"postgres {db.id} has no backup to recover from yet")
    if restore > now:
        return error(400, f"restoreTime {iso_us(restore)} is in the future (now {iso_us(now)})")
    if restore > latest:
        return error(400, f"restoreTime {iso_us(restore)} is within the last {emu.recovery.min_age_s:g} s: cannot "
                          f"restore to within the last {emu.recovery.min_age_s / 60:g} minutes; the newest "
                          f"restorable time is {iso_us(latest)}")
    if restore < starts_at:
        return error(400, f"restoreTime {iso_us(restore)} is before the recovery window, which starts at "
                          f"{iso_us(starts_at)}")
    snapshot = max(at for at in kept if at <= restore)
    return JSONResponse(postgres_json(emu, _create_clone(emu, db, body, restore, snapshot)), status_code=200)


def _create_clone(emu: Emulator, db: PostgresRec, body: dict[str, Any], restore: int, snapshot: int) -> PostgresRec:
    server = _server(emu)
    clone_id, suffix = new_id("dpg"), secrets.token_hex(4)
    name = body.get("restoreName") or f"{db.name}-recovery-{suffix}"
    database = ("pitr_" + "".join(c if c.isalnum() else "_" for c in name.lower()))[:50] + f"_{suffix}"
    user, password = f"pitr_{suffix}", secrets.token_urlsafe(18)
    now = emu.clock()
    clone = PostgresRec(id=clone_id, name=name, database=database, user=user, password=password,
                        url=server.url(database, user, password), version=db.version, created_at=now,
                        status="creating", plan=body.get("plan") or db.plan,
                        environment_id=body.get("environmentId") or db.environment_id, owned=True,
                        recovered_from=db.id, ready_at=now + emu.recovery.creating_s)
    failing, db.fail_next_recovery = db.fail_next_recovery, False
    copy = _Copy(server, clone, None if failing else snapshot_dir(emu, db) / f"{snapshot}.dump")
    with emu.lock:
        emu.recovery.copies[clone.id] = copy
        emu.add_postgres(clone)
    copy.start()
    log.info("emulator_recovery_started", postgres_id=db.id, clone_id=clone.id, name=name, restore_time=iso_us(restore),
             snapshot=iso_us(snapshot), snapshot_lag_s=round((restore - snapshot) / 1e6, 3))
    return clone


def advance(emu: Emulator) -> None:
    """Clones whose creating period has passed on the emulator's clock become available or recovery_failed."""
    now = emu.clock()
    for db in list(emu.postgres.values()):
        if db.status != "creating" or db.ready_at is None or db.ready_at > now:
            continue
        copy = emu.recovery.copies.get(db.id)
        if copy is not None:
            copy.join(COPY_WAIT_S)
            if copy.is_alive():
                continue
        with emu.lock:
            emu.recovery.copies.pop(db.id, None)
            db.status = "available" if copy is not None and copy.ok else "recovery_failed"
        log.info("emulator_recovery_finished", clone_id=db.id, status=db.status)


def _drop(emu: Emulator, db: PostgresRec) -> None:
    copy = emu.recovery.copies.pop(db.id, None)
    if copy is not None:
        copy.join(COPY_WAIT_S)
    if db.owned and emu.data_dir is not None:
        with psycopg.connect(_server(emu).url(), autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(db.database)))
            if db.recovered_from:
                conn.execute(sql.SQL("drop role if exists {}").format(sql.Identifier(db.user)))
    if emu.data_dir is not None:
        shutil.rmtree(snapshot_dir(emu, db), ignore_errors=True)


def delete_postgres(emu: Emulator, db: PostgresRec) -> Response:
    """``DELETE /postgres/{id}``: 204; the database is dropped when the local Render created it."""
    with emu.lock:
        emu.postgres.pop(db.id, None)
    _drop(emu, db)
    log.info("emulator_postgres_deleted", postgres_id=db.id, name=db.name, dropped=db.owned)
    return Response(status_code=204)


def _drop_clones(emu: Emulator) -> None:
    for db in [p for p in emu.postgres.values() if p.recovered_from]:
        try:
            _drop(emu, db)
        except psycopg.Error as exc:  # stopping anyway: the clone's database is left behind
            log.warning("emulator_clone_not_dropped", postgres_id=db.id, error=str(exc))


def recovery_routes(emu: Emulator, method: str, db: PostgresRec, body: dict[str, Any]) -> Response | None:
    """``GET`` and ``POST /postgres/{id}/recovery`` (None for another method)."""
    if method == "GET":
        return JSONResponse(recovery_info(emu, db))
    if method == "POST":
        return recover(emu, db, body)
    return None
