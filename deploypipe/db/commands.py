"""Plain functions behind ``invoke backup`` and ``invoke restore``: no CLI parsing here, JSON-ready results.

Restoring over a database named as production (its URL, or its database name,
matches a target with ``production: true``) needs ``yes_i_mean_production``
and a reason; who, when and why are logged and appended to
``<backups_dir>/restore-audit.jsonl``.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Callable, Literal

import structlog

from deploypipe.db.backup import create_backup, find_backup, restore_backup, retain
from deploypipe.db.pg import database_name, mask_url, same_database
from deploypipe.db.progress import Progress
from deploypipe.db.staging import Staging
from deploypipe.db.verified import take_verified_backup, take_verified_directory_backup
from deploypipe.errors import UsageError

__all__ = ["backup_command", "production_match", "resolve_target", "restore_command"]

log = structlog.get_logger(__name__)


def resolve_target(target: str, targets: Any) -> str:
    """A database target key (``main``) or a URL -> URL."""
    databases = getattr(targets, "databases", None) or {}
    if target in databases:
        return databases[target].url
    if "://" in target or "=" in target:
        return target
    raise UsageError(f"restore: '{target}' is neither a database target key nor a URL",
                     hint=f"known database keys: {', '.join(sorted(databases)) or 'none'}")


def production_match(url: str, targets: Any) -> str | None:
    """The key of the production database ``url`` names (same URL, or same database name), if any."""
    for key, db in sorted((getattr(targets, "databases", None) or {}).items()):
        if not db.production:
            continue
        if db.url == url or same_database(db.url, url) or database_name(db.url) == database_name(url):
            return key
    return None


def backup_command(*, url: str, backups_dir: Path, run_id: str, verify: bool = True,
                   fmt: Literal["custom", "directory"] = "custom", jobs: int | None = None, keep: int | None = None,
                   label: str = "manual", compress: int = 1,
                   report: Callable[[Progress], None] = lambda progress: None) -> dict[str, Any]:
    """Take a backup now; with ``verify`` it is restored into a throwaway staging server and compared (one pass)."""
    if verify:
        with Staging.start(None, url) as staging:
            if fmt == "custom":
                copy = take_verified_backup(url, backups_dir, run_id=run_id, staging=staging, label=label,
                                            compress=compress, jobs=jobs, report=report)
            else:
                copy = take_verified_directory_backup(url, backups_dir, run_id=run_id, staging=staging, label=label,
                                                      compress=compress, jobs=jobs)
        backup, checks = copy.backup, copy.checks
    else:
        backup, checks = create_backup(url, backups_dir, fmt=fmt, jobs=jobs, run_id=run_id, label=label,
                                       compress=compress), []
    result: dict[str, Any] = {"backup_id": backup.id, "path": backup.path, "sha256": backup.sha256,
                              "size_bytes": backup.size_bytes, "row_counts": backup.row_counts,
                              "verified": backup.verified, "compression": backup.compression,
                              "duration_s": backup.duration_s}
    if verify:
        result["verification"] = {"ok": True, "checks": checks}
    if keep:
        result["removed"] = retain(backups_dir, keep)
    return result


def restore_command(*, backups_dir: Path, backup_id: str, target: str, targets: Any,
                    yes_i_mean_production: bool = False, reason: str | None = None, user: str | None = None,
                    host: str | None = None, now: Callable[[], datetime] = lambda: datetime.now(UTC),
                    clean: bool = True) -> dict[str, Any]:
    """Restore ``backup_id`` into ``target`` (key or URL); production targets need the flag and a reason."""
    url = resolve_target(target, targets)
    backup = find_backup(backups_dir, backup_id)
    production = production_match(url, targets)
    who = f"{user or getpass.getuser()}@{host or socket.gethostname()}"
    record: dict[str, Any] = {"action": "restore", "backup_id": backup.id, "target": mask_url(url),
                              "production_target": production,
              "who": who, "when": now().isoformat(timespec="seconds"), "why": reason or ""}
    if production:
        if not yes_i_mean_production:
            raise UsageError(f"restore: {mask_url(url)} is the production database '{production}'",
                             hint="restoring overwrites production data; pass --yes-i-mean-production and "
                                  "--reason '...' if that is really what you want")
        if not (reason and reason.strip()):
            raise UsageError("restore: restoring production needs --reason (recorded with who and when)",
                             hint="e.g. --reason 'migration 0042 corrupted orders, INC-123'")
        log.warning("production_restore_requested", **record)
    result = restore_backup(backup, url, clean=clean)
    record.update(mismatched=result["mismatched"], ok=not result["mismatched"])
    audit = Path(backups_dir) / "restore-audit.jsonl"
    fd = os.open(audit, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, sort_keys=True) + "\n")
    log.info("restore_finished", **record)
    return {**record, "row_counts": result["row_counts"], "duration_s": result["duration_s"]}
