"""The production migration: only after a verified backup and a passing dry run, under an advisory lock.

``migrate_production`` records the revision before and after, runs the
migration command with lock/statement timeouts while holding a PostgreSQL
advisory lock (so two pipelines never migrate one database at once), and
says whether a failure had already changed the schema. ``compensate_migration``
applies the pipeline's declared policy and verifies it:

- ``leave``: keep the new schema (expand/contract: the previous release must cope with it);
- ``downgrade``: run the downgrade command to the recorded revision, then check the revision;
- ``restore``: restore this run's backup, only when declared AND confirmed (a question
  answered yes, or ``restore_confirmed`` for CI), then compare row counts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Mapping

import structlog

from deploypipe.db.advisory import Holder, PgAdvisoryLock
from deploypipe.db.backup import load_backup, restore_backup
from deploypipe.db.migration_run import MigrationRun, current_revision, run_migration
from deploypipe.db.pg import connect, database_name, mask_url
from deploypipe.errors import StageFailed

__all__ = ["BackupEvidence", "DryRunEvidence", "MigrateResult", "MigrationUndo", "check_preconditions",
           "compensate_migration", "lock_name", "migrate_production"]

log = structlog.get_logger(__name__)

Policy = Literal["downgrade", "leave", "restore"]


@dataclass(frozen=True)
class BackupEvidence:
    """The backup this run made, as the migration's precondition sees it."""

    backup_id: str
    path: str
    verified: bool


@dataclass(frozen=True)
class DryRunEvidence:
    """The dry run this run made, as the migration's precondition sees it."""

    ok: bool
    command: str
    backup_id: str | None


@dataclass
class MigrateResult:
    """What the production migration did (no secrets: the database is named by its masked URL)."""

    ok: bool
    database: str
    command: str
    revision_before: str | None
    revision_after: str | None
    production_changed: bool
    run: MigrationRun
    backup_id: str | None = None
    backup_path: str | None = None
    lock: str = ""
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class MigrationUndo:
    """What undoing (or knowingly keeping) a production migration did, and whether it was verified."""

    action: str
    verified: bool
    summary: str
    details: dict[str, Any] = field(default_factory=dict)


def lock_name(url: str) -> str:
    """The advisory lock every deploypipe migration of this database takes."""
    return f"deploypipe-migrate:{database_name(url)}"


def check_preconditions(backup: BackupEvidence | None, dry: DryRunEvidence | None, *, command: str,
                        require_backup: bool = True, require_dry_run: bool = True) -> list[str]:
    """Refuse (StageFailed) without a verified backup and a passing dry run of this run; warnings otherwise."""
    warnings: list[str] = []
    if not (backup and backup.verified):
        if require_backup:
            what = "an unverified backup" if backup else "no backup"
            raise StageFailed(f"refusing to migrate production: this run has {what}", where="db.migrate",
                              hint="put db.backup (verify: true) before db.migrate, or set require_backup: false to "
                                   "migrate without a safety net (logged)")
        warnings.append("migrating production WITHOUT a verified backup (require_backup: false)")
    if not (dry and dry.ok):
        if require_dry_run:
            raise StageFailed("refusing to migrate production: no successful db.dry_run in this run",
                              where="db.migrate",
                              hint="put db.dry_run before db.migrate, or set require_dry_run: false (logged)")
        warnings.append("migrating production WITHOUT a dry run (require_dry_run: false)")
    else:
        if dry.command and dry.command != command:
            warnings.append(f"the dry run ran '{dry.command}', production runs '{command}'")
        if backup and dry.backup_id and dry.backup_id != backup.backup_id:
            warnings.append(f"the dry run used backup {dry.backup_id}, not this run's {backup.backup_id}")
    for warning in warnings:
        log.warning("migrate_precondition_waived", detail=warning)
    return warnings


def migrate_production(*, url: str, command: str, cwd: Path, env: Mapping[str, str], log_path: Path, run_id: str,
                       backup: BackupEvidence | None, dry: DryRunEvidence | None,
                       require_backup: bool = True, require_dry_run: bool = True, lock_timeout_s: float = 5.0,
                       statement_timeout_s: float = 600.0, lock_wait_s: float = 0.0, timeout_s: float | None = None,
                       redact: Callable[[str], str] = lambda text: text, sleep: Callable[[float], None] = time.sleep,
                       clock: Callable[[], float] = time.monotonic, poll_s: float = 1.0) -> MigrateResult:
    """Run ``command`` against production under the advisory lock; StageFailed (with production_changed) on failure."""
    warnings = check_preconditions(backup, dry, command=command, require_backup=require_backup,
                                   require_dry_run=require_dry_run)
    lock = PgAdvisoryLock(url, lock_name(url), holder=Holder.of_this_process(run_id), what="migration lock",
                          sleep=sleep, clock=clock, poll_s=poll_s)
    lock.acquire(lock_wait_s)  # LockHeldError names the holder
    try:
        log.info("migration_started", database=mask_url(url), lock=lock.name)
        run = run_migration(url, command, cwd=cwd, env=env, log_path=log_path, lock_timeout_s=lock_timeout_s,
                            statement_timeout_s=statement_timeout_s, timeout_s=timeout_s, redact=redact)
    finally:
        lock.release()
    changed = run.revision_before != run.revision_after or bool(run.schema_changes)
    result = MigrateResult(ok=run.ok, database=mask_url(url), command=command, revision_before=run.revision_before,
                           revision_after=run.revision_after, production_changed=changed, run=run,
                           backup_id=backup.backup_id if backup else None, backup_path=backup.path if backup else None,
                           lock=lock.name, warnings=warnings)
    log.info("migration_finished", ok=run.ok, revision_before=run.revision_before, revision_after=run.revision_after,
             production_changed=changed)
    if not run.ok:
        state = ("production's schema CHANGED before the failure (revision "
                 f"{run.revision_before} -> {run.revision_after}); the compensation policy applies" if changed
                 else "production's schema is unchanged (the migration rolled back)")
        statement = f"; failed statement: {run.statement}" if run.statement else ""
        raise StageFailed(f"the production migration failed: {run.error}{statement}; {state}", where="db.migrate",
                          hint=f"full output in {run.log}", production_changed=changed, outputs=result)
    return result


def _confirmed(question: str, confirm: Callable[[str], bool] | None, restore_confirmed: bool) -> bool:
    if restore_confirmed:
        return True
    return bool(confirm and confirm(question))


def compensate_migration(result: MigrateResult, *, policy: Policy, url: str, cwd: Path, env: Mapping[str, str],
                         log_path: Path, run_id: str, downgrade_command: str = "alembic downgrade {revision}",
                         confirm: Callable[[str], bool] | None = None, restore_confirmed: bool = False,
                         lock_wait_s: float = 0.0, lock_timeout_s: float = 5.0, statement_timeout_s: float = 600.0,
                         timeout_s: float | None = None, redact: Callable[[str], str] = lambda text: text,
                         sleep: Callable[[float], None] = time.sleep,
                         clock: Callable[[], float] = time.monotonic) -> MigrationUndo:
    """Undo (or knowingly keep) what ``migrate_production`` did, per ``policy``; the result says what, verified."""
    before, after = result.revision_before, result.revision_after
    details: dict[str, Any] = {"policy": policy, "revision_before": before, "revision_after": after}
    if not result.production_changed and before == after:
        return MigrationUndo(action="nothing_to_do", verified=True, details=details,
                            summary=f"the migration did not change production (revision {before})")
    if policy == "leave":
        return MigrationUndo(action="left_schema", verified=True, details=details,
                            summary=f"schema left at revision {after} (policy leave: expand/contract, the previous "
                                    "release must run against the new schema)")
    lock = PgAdvisoryLock(url, lock_name(url), holder=Holder.of_this_process(run_id), what="migration lock",
                          sleep=sleep, clock=clock)
    if policy == "downgrade":
        target = before or "base"
        command = downgrade_command.format(revision=target)
        lock.acquire(lock_wait_s)
        try:
            run = run_migration(url, command, cwd=cwd, env=env, log_path=log_path, lock_timeout_s=lock_timeout_s,
                                statement_timeout_s=statement_timeout_s, timeout_s=timeout_s, redact=redact)
        finally:
            lock.release()
        details.update(command=command, revision_now=run.revision_after, exit_code=run.exit_code, error=run.error)
        verified = run.ok and run.revision_after == before
        summary = (f"downgraded to {target} (verified: revision is {run.revision_after})" if verified else
                   f"downgrade to {target} NOT verified: exit {run.exit_code}, revision now {run.revision_after}"
                   + (f", error: {run.error}" if run.error else ""))
        return MigrationUndo(action="downgraded", verified=verified, summary=summary, details=details)
    # policy == "restore"
    backup_path = result.backup_path
    if not backup_path:
        return MigrationUndo(action="restore_refused", verified=False, details=details,
                            summary="policy restore, but this run has no backup to restore: a human must decide")
    backup = load_backup(Path(backup_path).with_suffix(".json"))
    question = (f"Restore production database {mask_url(url)} from backup {backup.id} taken {backup.created_at}? "
                "Writes made since then are LOST.")
    if not _confirmed(question, confirm, restore_confirmed):
        return MigrationUndo(action="restore_refused", verified=False, details={**details, "backup_id": backup.id},
                            summary=f"restore of backup {backup.id} was not confirmed (answer yes, or set "
                                    "restore_confirmed: true for CI); schema left at revision "
                                    f"{after}: a human must decide")
    lock.acquire(lock_wait_s)
    try:
        restored = restore_backup(backup, url, clean=True)
        with connect(url) as conn:
            revision_now = current_revision(conn)
    finally:
        lock.release()
    verified = not restored["mismatched"] and revision_now == before
    extra = sorted(set(restored["row_counts"]) - set(backup.row_counts))  # created after the backup: left in place
    details.update(backup_id=backup.id, mismatched=restored["mismatched"], revision_now=revision_now,
                   tables_not_in_backup=extra)
    log.warning("production_restored", backup_id=backup.id, verified=verified)
    return MigrationUndo(action="restored", verified=verified, details=details,
                        summary=(f"restored backup {backup.id}: row counts match, revision {revision_now}" if verified
                                 else f"restored backup {backup.id} but NOT verified: mismatched "
                                      f"{restored['mismatched']}, revision {revision_now}"))
