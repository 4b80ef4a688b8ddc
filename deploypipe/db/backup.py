"""Backups of a PostgreSQL database with pg_dump: streamed to a private file, hashed, described, listed, pruned.

A backup is ``<id>.dump`` (custom format) or ``<id>.dir/`` (directory format)
plus ``<id>.json`` holding its metadata: sha256, server version, database
size, exact row counts per user table (counted in the same snapshot pg_dump
reads, so they are comparable after a restore), duration, run id. Files are
created 0600 (directories 0700) by a private umask, never chmod-ed afterwards.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import psycopg
import structlog

from deploypipe.core.embedded_pg import pg_bin
from deploypipe.core.redact import mask_url
from deploypipe.db.pg import connect, row_counts, run_tool, scalar, server_version, tool_target
from deploypipe.errors import StageErrored, StageFailed

__all__ = ["Backup", "create_backup", "file_sha256", "find_backup", "list_backups", "load_backup", "new_backup_id",
           "private_open", "remove_backup_files", "restore_backup", "retain"]

log = structlog.get_logger(__name__)

CHUNK = 1 << 20


@dataclass
class Backup:
    """One backup on disk and what was recorded about it."""

    id: str
    path: str
    format: Literal["custom", "directory"]
    sha256: str
    row_counts: dict[str, int]
    server_version: int
    database_size: int
    size_bytes: int
    duration_s: float
    run_id: str
    label: str
    database: str
    created_at: str
    verified: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    compression: int = 6  #: pg_dump's gzip level (6, pg_dump's default, in metadata older than this field)

    @property
    def meta_path(self) -> Path:
        return Path(self.path).with_suffix(".json")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self) -> None:
        """Rewrite the metadata file (0600) atomically, e.g. after verification."""
        tmp = self.meta_path.with_suffix(".json.tmp")
        tmp.unlink(missing_ok=True)
        with os.fdopen(private_open(tmp), "w", encoding="utf-8") as meta:
            json.dump(self.to_dict(), meta, indent=2, sort_keys=True)
        os.replace(tmp, self.meta_path)


def private_open(path: Path, flags: int = os.O_WRONLY | os.O_CREAT | os.O_EXCL) -> int:
    return os.open(path, flags, 0o600)


def file_sha256(path: Path | str) -> str:
    """sha256 of a file (read in 1 MiB chunks) or of a directory's manifest of per-file hashes."""
    path = Path(path)
    if path.is_dir():
        manifest = hashlib.sha256()
        for child in sorted(p for p in path.rglob("*") if p.is_file()):
            manifest.update(f"{file_sha256(child)}  {child.relative_to(path).as_posix()}\n".encode())
        return manifest.hexdigest()
    digest = hashlib.sha256()
    with open(path, "rb", buffering=0) as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def new_backup_id(backups_dir: Path, run_id: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    short = re.sub(r"[^A-Za-z0-9]", "", run_id)[:8] or "manual"
    base, n = f"{stamp}-{short}", 1
    candidate = base
    while any((backups_dir / f"{candidate}{suffix}").exists() for suffix in (".json", ".dump", ".dir")):
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def create_backup(url: str, backups_dir: Path | str, *, fmt: Literal["custom", "directory"] = "custom",
                  jobs: int | None = None, run_id: str, label: str = "", compress: int = 1) -> Backup:
    """pg_dump ``url`` into ``backups_dir`` (gzip level ``compress``); row counts come from pg_dump's snapshot.

    Not verified: :func:`deploypipe.db.verified.take_verified_backup` dumps and verifies in one pass.
    """
    backups_dir = Path(backups_dir)
    backups_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    backup_id = new_backup_id(backups_dir, run_id)
    target = backups_dir / (f"{backup_id}.dump" if fmt == "custom" else f"{backup_id}.dir")
    dump_url, dump_env = tool_target(url)
    started = time.monotonic()
    with connect(url) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        snapshot = scalar(conn, "select pg_export_snapshot()")
        version = server_version(conn)
        size = scalar(conn, "select pg_database_size(current_database())")
        args = [pg_bin("pg_dump"), "--no-password", f"--snapshot={snapshot}", f"-Z{compress}", "-d", dump_url]
        if fmt == "custom":
            args += ["-Fc"]
            out_fd = private_open(target)
        else:
            args += ["-Fd", "-f", str(target)] + ([f"-j{jobs}"] if jobs else [])
            out_fd = subprocess.DEVNULL
        try:
            proc = subprocess.Popen(args, stdout=out_fd, stderr=subprocess.PIPE, env={**os.environ, **dump_env},
                                    preexec_fn=lambda: os.umask(0o077))
        finally:
            if isinstance(out_fd, int) and out_fd >= 0:
                os.close(out_fd)
        try:
            counts = row_counts(conn)  # while pg_dump streams, in the same snapshot
        except BaseException:
            proc.kill()
            proc.wait()
            remove_backup_files(target)
            raise
        _, stderr = proc.communicate()
    duration = time.monotonic() - started
    if proc.returncode != 0:
        remove_backup_files(target)
        lines = stderr.decode("utf-8", "replace").strip().splitlines()
        raise StageErrored(f"pg_dump of {mask_url(url)} exited {proc.returncode}: {mask_url(' '.join(lines[-3:]))}",
                           where="db.backup", hint="check the pg_dump message; server and client versions must be "
                           "compatible (pg_dump >= server)")
    size_bytes = sum(p.stat().st_size for p in target.rglob("*")) if target.is_dir() else target.stat().st_size
    backup = Backup(id=backup_id, path=str(target), format=fmt, sha256=file_sha256(target), row_counts=counts,
                    server_version=version, database_size=int(size), size_bytes=size_bytes,
                    duration_s=round(duration, 3), run_id=run_id, label=label, database=mask_url(url),
                    created_at=datetime.now(UTC).isoformat(timespec="seconds"), compression=compress)
    backup.save()
    log.info("backup_created", backup_id=backup_id, format=fmt, size_bytes=size_bytes, duration_s=backup.duration_s,
             tables=len(counts))
    return backup


def remove_backup_files(path: Path) -> None:
    """Delete a backup's dump (file or directory) and its metadata, e.g. after pg_dump failed."""
    shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    path.with_suffix(".json").unlink(missing_ok=True)


def load_backup(meta_path: Path | str) -> Backup:
    data = json.loads(Path(meta_path).read_text(encoding="utf-8"))
    return Backup(**data)


def list_backups(backups_dir: Path | str) -> list[Backup]:
    """Backups in ``backups_dir``, oldest first (by id, which starts with a UTC timestamp)."""
    backups_dir = Path(backups_dir)
    if not backups_dir.is_dir():
        return []
    found = []
    for meta in sorted(backups_dir.glob("*.json")):
        try:
            found.append(load_backup(meta))
        except (ValueError, TypeError, OSError) as exc:
            log.warning("backup_metadata_unreadable", path=str(meta), error=str(exc))
    return sorted(found, key=lambda b: (b.created_at, b.id))


def find_backup(backups_dir: Path | str, backup_id: str) -> Backup:
    for backup in list_backups(backups_dir):
        if backup.id == backup_id:
            return backup
    known = ", ".join(b.id for b in list_backups(backups_dir)[-5:]) or "none"
    raise StageFailed(f"no backup '{backup_id}' in {backups_dir}", where="db.backup",
                      hint=f"latest backups: {known}")


def retain(backups_dir: Path | str, keep: int) -> list[str]:
    """Delete all but the newest ``keep`` backups (keep >= 1); returns the removed ids."""
    if keep < 1:
        raise ValueError("retain: keep must be at least 1 (the backup just taken is never deleted)")
    removed = []
    for backup in list_backups(backups_dir)[:-keep]:
        path = Path(backup.path)
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        backup.meta_path.unlink(missing_ok=True)
        removed.append(backup.id)
        log.info("backup_pruned", backup_id=backup.id)
    return removed


def restore_backup(backup: Backup, target_url: str, *, clean: bool = True, jobs: int | None = None,
                   count_rows: bool = True, checked_sha256: str | None = None) -> dict[str, Any]:
    """pg_restore ``backup`` into ``target_url`` (owners and grants skipped); returns row counts compared.

    Without ``jobs`` the restore is one transaction (all or nothing); with ``jobs`` it runs in parallel.
    ``count_rows=False`` skips the exact recount (the dry run: verification already compared them).
    ``checked_sha256`` is the file's hash when the caller just computed it (in parallel with other work).
    """
    if (checked_sha256 or file_sha256(backup.path)) != backup.sha256:
        raise StageFailed(f"backup {backup.id} does not match its recorded sha256", where=backup.path,
                          hint="the file changed or is corrupt since it was taken: do not restore it")
    url, env = tool_target(target_url)
    args = ["--no-password", "--no-owner", "--no-acl", "--exit-on-error", "-d", url]
    if clean:
        args += ["--clean", "--if-exists"]
    args += [f"-j{jobs}"] if jobs else ["--single-transaction"]
    started = time.monotonic()
    run_tool("pg_restore", [*args, backup.path], env=env, what=f"restore of {backup.id} into {mask_url(target_url)}")
    if not count_rows:
        log.info("backup_restored", backup_id=backup.id, target=mask_url(target_url), counted=False)
        return {"backup_id": backup.id, "target": mask_url(target_url), "row_counts": dict(backup.row_counts),
                "mismatched": {}, "counted": False, "duration_s": round(time.monotonic() - started, 3)}
    with connect(target_url) as conn:
        counts = row_counts(conn)
    mismatched = {t: {"recorded": n, "restored": counts.get(t)} for t, n in backup.row_counts.items()
                  if counts.get(t) != n}
    log.info("backup_restored", backup_id=backup.id, target=mask_url(target_url), mismatched=len(mismatched))
    return {"backup_id": backup.id, "target": mask_url(target_url), "row_counts": counts,
            "mismatched": mismatched, "counted": True, "duration_s": round(time.monotonic() - started, 3)}
