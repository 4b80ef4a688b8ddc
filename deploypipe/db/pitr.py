"""The PITR safety path for databases too big to dump: which path a database takes, and the restore compensation.

For a ``render_postgres`` database in ``mode: pitr`` (or ``auto`` above a size),
the backup is a *restore point* (a moment Render can recover to, journaled
before the migration), the dry run's staging copy is a *PITR clone* (a new
Render database with the data of that moment, migrated through its connection
info; ``pitr_clone.py``), and the restore compensation brings production back
by cloning at the restore point and copying the clone into production
(``pg_dump`` of the clone piped to ``pg_restore --clean``), only when confirmed.
Render's recovery always makes a NEW database, which bills while it exists:
every clone is deleted afterwards.

    choose_mode(mode, *, render_postgres, size_bytes=None, threshold_gb=None) -> ModeChoice   (pure; ``invoke plan``)
    database_size_bytes(url) -> int
    record_restore_point(client, postgres_id, now=time.time) -> RestorePoint
    recovery_clone(client, postgres_id, restore_time, name, *, min_age_s=600, ...)     context manager -> PitrClone
    restore_production_from(client, postgres_id, restore_point, production_url, *, confirm, run_id, ...)
        -> MigrationUndo (action restored | restore_refused, verified by row counts)
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from typing import Any, Callable, Literal

import structlog
from psycopg import sql

from deploypipe.core.embedded_pg import pg_bin
from deploypipe.db.advisory import Holder, PgAdvisoryLock
from deploypipe.db.migrate import MigrationUndo, lock_name
from deploypipe.db.migration_run import current_revision
from deploypipe.db.pg import connect, mask_url, row_counts, scalar, tool_target
from deploypipe.db.pitr_clone import (
    BILLING_NOTE,
    PitrClient,
    PitrClone,
    RestorePoint,
    iso,
    record_restore_point,
    recovery_clone,
)
from deploypipe.errors import SpecError, StageErrored

__all__ = ["BILLING_NOTE", "ModeChoice", "PitrClient", "PitrClone", "RestorePoint", "choose_mode",
           "database_size_bytes", "record_restore_point", "recovery_clone", "restore_production_from"]

log = structlog.get_logger(__name__)

_GB = 1024 ** 3


@dataclass(frozen=True)
class ModeChoice:
    """Which safety path a database takes (``path`` None: decided at run time from its size) and why."""

    path: Literal["dump", "pitr"] | None
    reason: str
    billing_note: str = ""

    def line(self) -> str:
        """One line for ``invoke plan``."""
        return f"{self.path or 'auto'}: {self.reason}" + (f"; {self.billing_note}" if self.billing_note else "")


# -- choosing a path ----------------------------------------------------------------------------------------------
def database_size_bytes(url: str) -> int:
    """``pg_database_size`` of the database ``url`` names (what ``mode: auto`` compares with its threshold)."""
    with connect(url) as conn:
        return int(scalar(conn, "select pg_database_size(current_database())"))


def choose_mode(mode: Literal["dump", "pitr", "auto"], *, render_postgres: str | None, size_bytes: int | None = None,
                threshold_gb: float | None = None) -> ModeChoice:
    """The path for a database target and why; SpecError for a target that cannot take the path it asks for."""
    if mode == "dump":
        return ModeChoice("dump", "mode: dump (pg_dump, verified on the staging copy it is restored into as it is "
                                  "written; the dry run migrates that copy)")
    if mode == "pitr" and not render_postgres:
        raise SpecError("mode: pitr needs targets.databases.<key>.render_postgres", where="pitr",
                        hint="name the Render Postgres (or its dpg- id) whose point-in-time recovery to use")
    if mode == "pitr":
        return ModeChoice("pitr", f"mode: pitr (Render point-in-time recovery of {render_postgres})", BILLING_NOTE)
    if threshold_gb is None or threshold_gb < 0:
        raise SpecError("mode: auto needs a size threshold in GB", where="pitr",
                        hint="set the threshold above which Render's point-in-time recovery replaces pg_dump")
    if not render_postgres:
        return ModeChoice("dump", "mode: auto, and no render_postgres to recover on Render: pg_dump")
    if size_bytes is None:
        return ModeChoice(None, f"mode: auto: Render point-in-time recovery of {render_postgres} if "
                                f"pg_database_size > {threshold_gb:g} GB when the run starts, else pg_dump",
                          f"with pitr, {BILLING_NOTE}")
    size = f"{size_bytes / _GB:.1f} GB"
    if size_bytes > threshold_gb * _GB:
        return ModeChoice("pitr", f"mode: auto: {size} > {threshold_gb:g} GB, Render point-in-time recovery of "
                                  f"{render_postgres}", BILLING_NOTE)
    return ModeChoice("dump", f"mode: auto: {size} <= {threshold_gb:g} GB, pg_dump")


# -- the restore compensation ---------------------------------------------------------------------------------
def _schemas(url: str) -> list[str]:
    """The clone's own schemas (not the system's, not an extension's): what the copy restores."""
    with connect(url) as conn:
        return [row[0] for row in conn.execute(
            "select n.nspname from pg_namespace n where n.nspname !~ '^pg_' and n.nspname <> 'information_schema' "
            "and not exists (select 1 from pg_depend d where d.classid = 'pg_namespace'::regclass "
            "and d.objid = n.oid and d.deptype = 'e') order by 1")]


def copy_database(source_url: str, target_url: str) -> None:
    """``pg_dump -Fc`` of ``source_url`` piped into ``pg_restore --clean`` of ``target_url``, in one transaction.

    Only the source's own schemas are restored (``-n``): extensions are left as the target has them (a production
    role cannot drop them). Objects of the target that the source lacks are left in place. StageErrored on failure.
    """
    schemas = _schemas(source_url)
    with connect(target_url, autocommit=True) as conn:  # with -n, pg_restore creates objects but not their schemas
        present = {row[0] for row in conn.execute("select nspname from pg_namespace")}
        for schema in sorted(set(schemas) - present):
            conn.execute(sql.SQL("create schema {}").format(sql.Identifier(schema)))
    source, source_env = tool_target(source_url)
    target, target_env = tool_target(target_url)
    dump = subprocess.Popen([pg_bin("pg_dump"), "--no-password", "-Fc", "-d", source], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env={**os.environ, **source_env})
    assert dump.stdout is not None
    try:
        restore = subprocess.run([pg_bin("pg_restore"), "--no-password", "--clean", "--if-exists", "--no-owner",
                                  "--no-acl", "--single-transaction", "--exit-on-error",
                                  *[f"--schema={schema}" for schema in schemas], "-d", target],
                                 stdin=dump.stdout, capture_output=True, env={**os.environ, **target_env})
    finally:
        dump.stdout.close()  # pg_dump gets EPIPE if pg_restore stopped reading
        dump_err = dump.stderr.read() if dump.stderr else b""
        dump.wait()
    for tool, code, err in (("pg_dump", dump.returncode, dump_err), ("pg_restore", restore.returncode, restore.stderr)):
        if code != 0:
            lines = err.decode("utf-8", "replace").strip().splitlines()
            raise StageErrored(f"copying the PITR clone into {mask_url(target_url)}: {tool} exited {code}: "
                               f"{mask_url(' '.join(lines[-3:])) or 'no message'}", where="pitr restore",
                               hint="production is unchanged (the restore runs in one transaction)")


def restore_production_from(client: PitrClient, postgres_id: str, restore_point: RestorePoint, production_url: str, *,
                            confirm: Callable[[str], bool], run_id: str, name: str = "deploypipe-restore",
                            min_age_s: float = 600.0, max_wait_s: float = 900.0, timeout_s: float = 3600.0,
                            poll_s: float = 2.0, lock_wait_s: float = 60.0, clock_skew_s: float = 30.0,
                            sleep: Callable[[float], None] = time.sleep,
                            clock: Callable[[], float] = time.time) -> MigrationUndo:
    """Bring production back to ``restore_point``: a PITR clone at exactly that moment (waiting up to ``max_wait_s``
    until Render allows it), copied into ``production_url`` under the migration lock, row counts compared, the clone
    deleted. Only when ``confirm(question)`` says yes (else action ``restore_refused``, nothing done).

    Raises StageFailed/ProviderError when no clone can be made (see ``recovery_clone``), StageErrored when the copy
    fails (production unchanged: one transaction), LockHeldError when another run holds the migration lock.
    """
    details: dict[str, Any] = {"postgres_id": postgres_id, "restore_point": restore_point.iso}
    question = (f"Restore production database {mask_url(production_url)} to {restore_point.iso} through a Render "
                f"point-in-time clone ({BILLING_NOTE})? Writes made since then are LOST.")
    if not confirm(question):
        return MigrationUndo(action="restore_refused", verified=False, details=details,
                             summary=f"restore to the restore point {restore_point.iso} was not confirmed (answer yes, "
                                     "or set restore_confirmed: true for CI): a human must decide")
    started = clock()
    with recovery_clone(client, postgres_id, restore_point, name, min_age_s=min_age_s, exact=True,
                        max_wait_s=max_wait_s, timeout_s=timeout_s, poll_s=poll_s, clock_skew_s=clock_skew_s,
                        sleep=sleep, clock=clock) as clone:
        with connect(clone.url) as conn:
            expected = row_counts(conn)
        lock = PgAdvisoryLock(production_url, lock_name(production_url), holder=Holder.of_this_process(run_id),
                              what="migration lock", sleep=sleep, clock=clock)
        lock.acquire(lock_wait_s)
        try:
            copy_database(clone.url, production_url)
            with connect(production_url) as conn:
                actual, revision_now = row_counts(conn), current_revision(conn)
        finally:
            lock.release()
    mismatched = {t: {"restore_point": n, "production": actual.get(t)} for t, n in expected.items()
                  if actual.get(t) != n}
    extra = sorted(set(actual) - set(expected))  # created after the restore point: left in place
    details.update(clone_id=clone.postgres_id, restore_time=iso(clone.restore_time), mismatched=mismatched,
                   tables_not_at_restore_point=extra, revision_now=revision_now,
                   duration_s=round(clock() - started, 3))
    verified = not mismatched
    log.warning("production_restored_from_pitr", postgres_id=postgres_id, restore_point=restore_point.iso,
                verified=verified, tables_not_at_restore_point=extra)
    left = f"; tables created since then were left in place: {', '.join(extra)}" if extra else ""
    summary = (f"restored to {restore_point.iso} through a PITR clone: row counts match, revision {revision_now}{left}"
               if verified else f"restored to {restore_point.iso} but NOT verified: mismatched {mismatched}{left}")
    return MigrationUndo(action="restored", verified=verified, summary=summary, details=details)
