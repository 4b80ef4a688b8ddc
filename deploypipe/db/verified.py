"""A verified backup in one pass: pg_dump writes the backup file while a restore of that same file fills staging.

    take_verified_backup(url, backups_dir, run_id=, staging=, ...) -> VerifiedCopy

One dump, one restore, and both proofs at once:

1. One read-only REPEATABLE READ connection exports its snapshot; pg_dump
   (``-Fc -Z1``) dumps that snapshot into the 0600 backup file while the same
   connection counts every table's rows and hashes the small tables.
2. A follower thread reads the growing file and streams it into
   ``pg_restore --section=pre-data --section=data --single-transaction`` on
   the staging server (started in the background while the dump runs). The
   restore consumes the file's own bytes, so a file that restores is the file
   that was checked.
3. When both exited 0: the file's sha256, ``pg_restore --list``, the indexes
   and constraints (``--section=post-data -j N``) and, in parallel, the row
   counts and small-table hashes on staging against the snapshot's.

The pg_restore children (step 2, and the post-data build) live in :mod:`deploypipe.db.restore_stream`; step 3 in
:mod:`deploypipe.db.copy_check`.

Any failure blocks before production changes (StageFailed, exit 1); post-data
never runs after a failed stream (it reads only the table of contents and
would succeed on a damaged file). The staging copy it leaves is ready for a
dry run (:mod:`deploypipe.db.dryrun`), so the pipeline restores once.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Callable

import psycopg

from deploypipe.core.processes import stop_group
from deploypipe.core.redact import mask_url
from deploypipe.db.backup import (
    Backup,
    create_backup,
    file_sha256,
    new_backup_id,
    private_open,
    remove_backup_files,
    restore_backup,
)
from deploypipe.db.copy_check import VerifiedCopy, mismatch_text, verify_copy
from deploypipe.db.pg import connect, row_counts, scalar, server_version, table_hashes, tool_target, user_tables
from deploypipe.db.progress import DumpWatch, Progress, Sampler
from deploypipe.db.restore_stream import Follower, pg_tool
from deploypipe.db.staging import Staging
from deploypipe.errors import StageErrored, StageFailed

__all__ = ["HASH_LIMIT_BYTES", "VerifiedCopy", "take_verified_backup", "take_verified_directory_backup"]

#: Tables up to this size (pg_table_size) are hashed row by row on both sides; bigger ones are counted only
#: (hashing costs about eight times a count).
HASH_LIMIT_BYTES = 16 << 20


def _no_progress(progress: Progress) -> None:
    return None


def take_verified_backup(url: str, backups_dir: Path | str, *, run_id: str, staging: Staging, label: str = "",
                         compress: int = 1, jobs: int | None = None,
                         report: Callable[[Progress], None] = _no_progress, interval_s: float = 2.0,
                         dump_argv: Callable[[list[str]], list[str]] = lambda argv: argv) -> VerifiedCopy:
    """Dump ``url`` into ``backups_dir`` and verify it by restoring that file into ``staging``; see the module.

    ``compress`` is pg_dump's gzip level (1-9: level 0 would let damage inside a text value restore silently).
    ``jobs`` parallelises the index builds (default: one per core, up to 4). ``report`` gets the dump's and the
    index builds' :class:`Progress` every ``interval_s``. ``dump_argv`` may rewrite the pg_dump command line (tests
    damage the dump through it). The caller owns ``staging`` and closes it, also when this raises.
    """
    if not 1 <= compress <= 9:
        raise ValueError("compress must be 1-9: uncompressed dumps lose zlib's check against damaged data")
    backups_dir = Path(backups_dir)
    backups_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    backup_id = new_backup_id(backups_dir, run_id)
    path = backups_dir / f"{backup_id}.dump"
    jobs = jobs or max(1, min(4, os.cpu_count() or 1))
    timings: dict[str, float] = {}
    started = time.monotonic()
    dump_done = threading.Event()
    follower = Follower(path, staging, dump_done)
    dump: subprocess.Popen | None = None
    appname = f"deploypipe-dump-{uuid.uuid4().hex[:12]}"
    try:
        with connect(url) as conn:
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
            snapshot = scalar(conn, "select pg_export_snapshot()")
            version = server_version(conn)
            database_size = int(scalar(conn, "select pg_database_size(current_database())"))
            tables = user_tables(conn)
            dump, dump_errors = _start_dump(url, path, snapshot=snapshot, compress=compress, appname=appname,
                                            argv=dump_argv)
            follower.start()
            counts = row_counts(conn)  # in pg_dump's snapshot, while it streams
            small = [name for _, name, size, _ in tables if size <= HASH_LIMIT_BYTES]
            hashes = table_hashes(conn, small)
            timings["counted_s"] = round(time.monotonic() - started, 3)
            watch = DumpWatch(url, appname, {oid: (size, float(counts.get(name, rows)))
                                             for oid, name, size, rows in tables})
            try:
                with Sampler("dump", "bytes", lambda: (watch.done_bytes(), watch.total), report,
                             interval_s=interval_s):
                    code = dump.wait()
            finally:
                watch.close()
        dump_done.set()
        timings["dump_s"] = round(time.monotonic() - started, 3)
        message = _tail(dump_errors)
        dump_errors.close()
        if code != 0:
            follower.abort.set()
            follower.join()
            remove_backup_files(path)
            raise StageErrored(f"pg_dump of {mask_url(url)} exited {code}: {message}", where="db.backup",
                               hint="check the pg_dump message; pg_dump must be at least the server's version")
        follower.join()
        timings["stream_done_s"] = round(follower.finished_at - started, 3)
        backup = Backup(id=backup_id, path=str(path), format="custom", sha256="", row_counts=counts,
                        server_version=version, database_size=database_size, size_bytes=path.stat().st_size,
                        duration_s=timings["dump_s"], run_id=run_id, label=label, database=mask_url(url),
                        created_at=datetime.now(UTC).isoformat(timespec="seconds"), compression=compress)
        if follower.error is not None or follower.code != 0:
            backup.sha256 = file_sha256(path)
            backup.save()  # kept, unverified, for whoever investigates
        if follower.error is not None:
            raise follower.error
        assert follower.restore is not None
        if follower.code != 0:
            raise StageFailed(f"backup {backup_id} failed verification: its restore into staging failed: "
                              f"{follower.restore.message()}", where="db.backup",
                              hint="production is untouched; the dump is damaged or incomplete (disk, network, "
                                   f"server); it is kept unverified at {path}")
        checks: list[dict[str, Any]] = [{"check": "restore", "ok": True, "section": "pre-data, data",
                                         "single_transaction": True}]
        return verify_copy(backup, staging, follower.url, checks, counts, hashes, jobs=jobs, report=report,
                       interval_s=interval_s, timings=timings, started=started)
    except BaseException:
        follower.abort.set()
        if dump is not None:
            stop_group(dump, grace_s=2.0)
        if follower.is_alive():
            follower.join(timeout=10)
        if follower.restore is not None:
            follower.restore.stop()
        if not path.with_suffix(".json").exists():  # interrupted before it was described: a partial dump
            remove_backup_files(path)
        raise


def _start_dump(url: str, path: Path, *, snapshot: str, compress: int, appname: str,
                argv: Callable[[list[str]], list[str]]) -> tuple[subprocess.Popen, IO[bytes]]:
    """pg_dump into the new 0600 file ``path`` through a seekable fd (so it records data offsets)."""
    target, env = tool_target(url)
    out = private_open(path)
    errors = tempfile.TemporaryFile()
    try:
        return subprocess.Popen(argv(pg_tool("pg_dump", ["--no-password", f"--snapshot={snapshot}", "-Fc",
                                                       f"-Z{compress}", "-d", target])),
                                stdout=out, stderr=errors, env={**os.environ, **env, "PGAPPNAME": appname},
                                start_new_session=True, preexec_fn=lambda: os.umask(0o077)), errors
    finally:
        os.close(out)


def _tail(errors: IO[bytes]) -> str:
    errors.seek(0)
    lines = errors.read().decode("utf-8", "replace").strip().splitlines()
    return mask_url(" ".join(lines[-3:])) or "no message"


def take_verified_directory_backup(url: str, backups_dir: Path | str, *, run_id: str, staging: Staging,
                                   label: str = "", compress: int = 1, jobs: int | None = None) -> VerifiedCopy:
    """``format: directory``: ``pg_dump -Fd -j N``, then ``pg_restore -j N`` of it into ``staging``, counts compared.

    Dump and restore cannot overlap (the table of contents is written last); the dump runs N parallel COPYs on
    production. The caller owns ``staging``.
    """
    if not 1 <= compress <= 9:
        raise ValueError("compress must be 1-9: uncompressed dumps lose zlib's check against damaged data")
    jobs = jobs or max(1, min(4, os.cpu_count() or 1))
    started = time.monotonic()
    backup = create_backup(url, backups_dir, fmt="directory", jobs=jobs, run_id=run_id, label=label,
                           compress=compress)
    timings = {"dump_s": round(time.monotonic() - started, 3)}
    target = staging.ready()
    try:
        restored = restore_backup(backup, target, clean=staging.overwrites, jobs=jobs)
    except StageErrored as exc:
        raise StageFailed(f"backup {backup.id} failed verification: its restore into staging failed: {exc.message}",
                          where="db.backup", hint=f"production is untouched; the dump is kept unverified at "
                                                  f"{backup.path}") from None
    timings["verified_s"] = round(time.monotonic() - started, 3)
    mismatched = restored["mismatched"]
    checks: list[dict[str, Any]] = [
        {"check": "sha256", "ok": True, "sha256": backup.sha256},
        {"check": "restore", "ok": True, "jobs": jobs},
        {"check": "row_counts", "ok": not mismatched, "tables": len(backup.row_counts), "mismatched": mismatched}]
    backup.verified = not mismatched
    backup.extra["verified_on"] = "staging copy"
    backup.save()
    if mismatched:
        raise StageFailed(f"backup {backup.id} failed verification: restored row counts differ from the snapshot's: "
                          + mismatch_text(mismatched),
                          where="db.backup", hint=f"production is untouched; the dump is kept unverified at "
                                                  f"{backup.path}")
    return VerifiedCopy(backup=backup, staging=staging, url=target, checks=checks, timings=timings,
                        row_counts=restored["row_counts"])
