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

Any failure blocks before production changes (StageFailed, exit 1); post-data
never runs after a failed stream (it reads only the table of contents and
would succeed on a damaged file). The staging copy it leaves is ready for a
dry run (:mod:`deploypipe.db.dryrun`), so the pipeline restores once.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import threading
import time
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Callable, Sequence

import psycopg
import structlog

from deploypipe.core.embedded_pg import pg_bin
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
from deploypipe.db.pg import connect, row_counts, scalar, server_version, table_hashes, tool_target, user_tables
from deploypipe.db.progress import DumpWatch, ItemCounter, Progress, Sampler
from deploypipe.db.staging import Staging
from deploypipe.errors import StageErrored, StageFailed

__all__ = ["HASH_LIMIT_BYTES", "VerifiedCopy", "reset_database", "take_verified_backup",
           "take_verified_directory_backup"]

log = structlog.get_logger(__name__)

#: Tables up to this size (pg_table_size) are hashed row by row on both sides; bigger ones are counted only
#: (hashing costs about eight times a count).
HASH_LIMIT_BYTES = 16 << 20
CHUNK = 1 << 20
_TAIL_LINES = 20
_VERBOSE = re.compile(r"pg_restore: (processing|finished|launching|creating|connecting|executing|implied) ")


@dataclass
class VerifiedCopy:
    """A verified backup and the staging copy it was verified on (close it when done with it)."""

    backup: Backup
    staging: Staging
    url: str
    checks: list[dict[str, Any]]
    timings: dict[str, float] = field(default_factory=dict)
    row_counts: dict[str, int] = field(default_factory=dict)

    def close(self) -> None:
        self.staging.close()


def _no_progress(progress: Progress) -> None:
    return None


def _tool(name: str, args: Sequence[str]) -> list[str]:
    return [pg_bin(name), *args]


class _Restore:
    """A pg_restore child whose stderr lines are kept (the last few) and fed to ``on_line``."""

    def __init__(self, argv: list[str], env: dict[str, str], *, stdin: Any = subprocess.DEVNULL,
                 on_line: Callable[[str], None] = lambda line: None):
        self.tail: deque[str] = deque(maxlen=_TAIL_LINES)
        self.proc = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     env={**os.environ, **env}, start_new_session=True)
        self._on_line = on_line
        self._reader = threading.Thread(target=self._read, name="pg_restore-stderr", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for raw in iter(self.proc.stderr.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip()
            self._on_line(line)
            if not _VERBOSE.match(line):  # -v's progress lines would push the error out of the tail
                self.tail.append(line)

    def wait(self) -> int:
        code = self.proc.wait()
        self._reader.join(timeout=5)
        return code

    def message(self) -> str:
        errors = [line for line in self.tail if "error" in line or "could not" in line] or list(self.tail)
        return mask_url(" ".join(errors[-3:])) or "no message"

    def stop(self) -> None:
        stop_group(self.proc, grace_s=2.0)


class _Follower(threading.Thread):
    """Streams the growing backup file into ``pg_restore`` (pre-data and data, one transaction) on staging."""

    def __init__(self, path: Path, staging: Staging, dump_done: threading.Event):
        super().__init__(name="backup-follower", daemon=True)
        self.path, self.staging, self.dump_done = path, staging, dump_done
        self.abort = threading.Event()
        self.restore: _Restore | None = None
        self.error: BaseException | None = None
        self.code: int | None = None
        self.finished_at = 0.0
        self.url = ""

    def run(self) -> None:
        try:
            self.url = self.staging.ready()
            if self.abort.is_set():
                return
            if self.staging.overwrites:
                reset_database(self.url)
            target, env = tool_target(self.url)
            self.restore = _Restore(_tool("pg_restore", ["--no-password", "--no-owner", "--no-acl", "--exit-on-error",
                                                          "--single-transaction", "--section=pre-data",
                                                          "--section=data", "-d", target]),
                                    env, stdin=subprocess.PIPE)
            self._pump(self.restore.proc.stdin)
            self.code = self.restore.wait()
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which decides
            self.error = exc
        finally:
            self.finished_at = time.monotonic()

    def _pump(self, sink: IO[bytes] | None) -> None:
        assert sink is not None
        try:
            with open(self.path, "rb", buffering=0) as source:
                while not self.abort.is_set():
                    finished = self.dump_done.is_set()
                    chunk = source.read(CHUNK)
                    if chunk:
                        sink.write(chunk)
                    elif finished:
                        break
                    else:
                        time.sleep(0.05)
            sink.close()
        except BrokenPipeError:  # pg_restore stopped reading: its exit code and message say why
            pass
        if self.abort.is_set() and self.restore is not None:
            self.restore.stop()


def reset_database(url: str) -> None:
    """Drop every user schema of the database ``url`` (CASCADE) and recreate ``public``: it is overwritten."""
    with connect(url, autocommit=True) as conn:
        schemas = [row[0] for row in conn.execute(
            "select nspname from pg_namespace where nspname not in ('pg_catalog', 'information_schema') "
            "and nspname not like 'pg_toast%' and nspname not like 'pg_temp%'").fetchall()]
        for schema in schemas:
            conn.execute(psycopg.sql.SQL("drop schema {} cascade").format(psycopg.sql.Identifier(schema)))
        conn.execute("create schema public")


def _post_data_items(path: Path) -> int:
    listing = subprocess.run(_tool("pg_restore", ["--list", "--section=post-data", str(path)]),
                             capture_output=True, check=False)
    return sum(1 for line in listing.stdout.decode("utf-8", "replace").splitlines()
               if line.strip() and not line.startswith(";"))


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
    follower = _Follower(path, staging, dump_done)
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
        return _finish(backup, staging, follower.url, checks, counts, hashes, jobs=jobs, report=report,
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
        return subprocess.Popen(argv(_tool("pg_dump", ["--no-password", f"--snapshot={snapshot}", "-Fc",
                                                       f"-Z{compress}", "-d", target])),
                                stdout=out, stderr=errors, env={**os.environ, **env, "PGAPPNAME": appname},
                                start_new_session=True, preexec_fn=lambda: os.umask(0o077)), errors
    finally:
        os.close(out)


def _tail(errors: IO[bytes]) -> str:
    errors.seek(0)
    lines = errors.read().decode("utf-8", "replace").strip().splitlines()
    return mask_url(" ".join(lines[-3:])) or "no message"


def _finish(backup: Backup, staging: Staging, url: str, checks: list[dict[str, Any]], counts: dict[str, int],
            hashes: dict[str, str], *, jobs: int, report: Callable[[Progress], None], interval_s: float,
            timings: dict[str, float], started: float) -> VerifiedCopy:
    """After a clean stream: hash, list, build indexes and compare the copy with the snapshot, in parallel."""
    path = Path(backup.path)
    problems: list[str] = []
    with ThreadPoolExecutor(max_workers=3) as pool:
        digest = pool.submit(file_sha256, path)
        compared = pool.submit(_compare, url, counts, hashes)
        items = _post_data_items(path)
        counter = ItemCounter(items)
        target, env = tool_target(url)
        post = _Restore(_tool("pg_restore", ["--no-password", "--no-owner", "--no-acl", "--exit-on-error", "-v",
                                             "--section=post-data", f"-j{jobs}", "-d", target, str(path)]),
                        env, on_line=counter.feed)
        try:
            with Sampler("indexes", "items", lambda: (counter.done, counter.total), report, interval_s=interval_s):
                post_code = post.wait()
        except BaseException:
            post.stop()
            raise
        timings["post_data_s"] = round(time.monotonic() - started, 3)
        backup.sha256 = digest.result()
        checks.append({"check": "sha256", "ok": True, "sha256": backup.sha256})
        checks.append({"check": "pg_restore_list", "ok": True, "post_data_entries": items})
        if post_code != 0:
            problems.append(f"building indexes and constraints on staging failed: {post.message()}")
        checks.append({"check": "post_data", "ok": post_code == 0, "entries": items, "jobs": jobs})
        staged_counts, mismatched, differing = compared.result()
    checks.append({"check": "row_counts", "ok": not mismatched, "tables": len(counts), "mismatched": mismatched})
    checks.append({"check": "table_hashes", "ok": not differing, "tables": len(hashes), "differing": differing})
    if mismatched:
        problems.append("restored row counts differ from the snapshot's: " + ", ".join(
            f"{t} {m['recorded']} -> {m['restored']}" for t, m in sorted(mismatched.items())))
    if differing:
        problems.append("restored rows differ from the snapshot's in " + ", ".join(sorted(differing)))
    backup.verified = not problems
    backup.extra["verified_on"] = "staging copy"
    backup.save()
    timings["verified_s"] = round(time.monotonic() - started, 3)
    if problems:
        raise StageFailed(f"backup {backup.id} failed verification: {'; '.join(problems)}", where="db.backup",
                          hint=f"production is untouched; the dump is kept unverified at {path}")
    log.info("backup_verified", backup_id=backup.id, tables=len(counts), hashed=len(hashes), **timings)
    return VerifiedCopy(backup=backup, staging=staging, url=url, checks=checks, timings=timings,
                        row_counts=staged_counts)


def _compare(url: str, counts: dict[str, int], hashes: dict[str, str]
             ) -> tuple[dict[str, int], dict[str, dict[str, int | None]], list[str]]:
    with connect(url) as conn:
        staged = row_counts(conn)
        staged_hashes = table_hashes(conn, [name for name in hashes if name in staged])
    mismatched = {t: {"recorded": n, "restored": staged.get(t)} for t, n in counts.items() if staged.get(t) != n}
    differing = [t for t, h in hashes.items() if t not in mismatched and staged_hashes.get(t) != h]
    return staged, mismatched, differing



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
                          + ", ".join(f"{t} {m['recorded']} -> {m['restored']}" for t, m in sorted(mismatched.items())),
                          where="db.backup", hint=f"production is untouched; the dump is kept unverified at "
                                                  f"{backup.path}")
    return VerifiedCopy(backup=backup, staging=staging, url=target, checks=checks, timings=timings,
                        row_counts=restored["row_counts"])
