"""The staging dry run: restore this run's verified backup into a staging database and run the migration there.

The migration meets production's data before production does (seed 002: a
unique index over duplicated values failed five deploys in a row; seed 004: a
swallowed error turned into "current transaction is aborted"). Staging is the
``staging_url`` given, or an ephemeral embedded PostgreSQL in a temp directory
that is removed afterwards. Differences between staging and production that
can make the rehearsal lie (major version, extension versions) are warnings.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Callable, Mapping, Sequence

import structlog

from deploypipe.db.backup import Backup, file_sha256, restore_backup
from deploypipe.db.compat import CompatResult, check_compat
from deploypipe.db.migration_run import MigrationRun, run_migration
from deploypipe.db.pg import connect, server_version
from deploypipe.db.staging import Staging
from deploypipe.db.verified import VerifiedCopy
from deploypipe.errors import StageErrored, StageFailed

__all__ = ["DryRunResult", "compare_servers", "dry_run", "failure_hint", "rehearsal_failure", "rehearse"]

log = structlog.get_logger(__name__)


@dataclass
class DryRunResult:
    """What the rehearsal did; ``run`` is the migration's outcome on staging."""

    ok: bool
    backup_id: str
    staging: str
    command: str
    restore_s: float
    row_counts: dict[str, int]
    run: MigrationRun
    warnings: list[str] = field(default_factory=list)
    duration_s: float = 0.0
    compat: CompatResult | None = None
    reused_copy: bool = False


def compare_servers(production_url: str, staging_url: str) -> list[str]:
    """Warnings when staging cannot stand in for production: major version, extension versions."""
    query_installed = "select extname, extversion from pg_extension"
    query_available = "select name, version from pg_available_extension_versions"
    with connect(production_url) as prod, connect(staging_url) as stage:
        prod.read_only = True
        versions = [server_version(c) // 10000 for c in (prod, stage)]
        installed: dict[str, str] = dict(prod.execute(query_installed).fetchall())
        prod_available: dict[str, set[str]] = {}
        for name, version in prod.execute(query_available):
            prod_available.setdefault(name, set()).add(version)
        stage_available: dict[str, set[str]] = {}
        for name, version in stage.execute(query_available):
            stage_available.setdefault(name, set()).add(version)
    warnings = []
    if versions[0] != versions[1]:
        warnings.append(f"staging runs PostgreSQL {versions[1]}, production {versions[0]}: the rehearsal may differ")
    for name, version in sorted(installed.items()):
        if version not in stage_available.get(name, set()):
            warnings.append(f"extension {name} {version} is installed in production but staging cannot install it")
        elif prod_available.get(name, set()) != stage_available.get(name, set()):
            warnings.append(f"extension {name}: production offers {sorted(prod_available.get(name, set()))}, "
                            f"staging {sorted(stage_available.get(name, set()))}")
    return warnings


def failure_hint(error: str, log_path: str) -> str:
    """The safe next step for the commonest migration failures."""
    text = error.lower()
    if "current transaction is aborted" in text:
        return ("an earlier statement of the same transaction failed and its error was swallowed (e.g. op.* helpers "
                f"monkey-patched to catch exceptions); the first error in {log_path} is the real cause. Production "
                "was not touched")
    if "extension" in text and "version" in text:
        return "pin an extension version the server offers (pg_available_extension_versions) or drop the VERSION clause"
    if "could not create unique index" in text or "duplicate key" in text:
        return ("production data has duplicates the new unique index/constraint rejects: clean them up in an "
                "earlier migration (or deduplicate in this one) and dry-run again")
    if "lock timeout" in text or "statement timeout" in text:
        return "the migration needs a long lock or runs long: split it, or raise the timeouts deliberately"
    return f"fix the migration and dry-run again; full output in {log_path}. Production was not touched"


def dry_run(*, backup: Backup, production_url: str, command: str, cwd: Path, copy: VerifiedCopy | None = None,
            env: Mapping[str, str], log_path: Path, staging_url: str | None = None, lock_timeout_s: float = 5.0,
            statement_timeout_s: float = 600.0, timeout_s: float | None = None,
            redact: Callable[[str], str] = lambda text: text, restore_jobs: int | None = None,
            compat_command: str | None = None, compat_health_path: str = "/health",
            compat_timeout_s: float = 30.0, compat_cwd: Path | None = None,
            compat_paths: Sequence[str] = (), expand: tuple[str | None] | None = None) -> DryRunResult:
    """Run ``command`` on a copy of production with DATABASE_URL/PGOPTIONS; StageFailed if it fails.

    The copy is ``copy``, the staging copy ``backup`` was verified on (the usual path: nothing is restored
    again); without one, ``backup`` is restored into ``staging_url`` or a throwaway server with ``restore_jobs``
    parallel jobs (default: up to 4, one per core), without a recount (the backup's verification proved the
    counts). The caller closes ``copy``. With ``compat_command`` (the live release's start
    command, run in ``compat_cwd``, default ``cwd``) the live release is then started against the migrated copy,
    must answer 200 on ``compat_health_path`` within ``compat_timeout_s`` and no 5xx on any GET of
    ``compat_paths`` (see deploypipe.db.compat); with ``expand`` on the expanded schema, between the two phases
    (see :func:`rehearse`).
    """
    jobs = restore_jobs or max(1, min(4, os.cpu_count() or 1))
    started = time.monotonic()
    rehearse_here = partial(rehearse, command=command, cwd=cwd, env=env, log_path=log_path,
                            lock_timeout_s=lock_timeout_s, statement_timeout_s=statement_timeout_s,
                            timeout_s=timeout_s, redact=redact, compat_command=compat_command,
                            compat_health_path=compat_health_path, compat_timeout_s=compat_timeout_s,
                            compat_cwd=compat_cwd, compat_paths=compat_paths, expand=expand)
    if copy is not None:
        warnings = _warn(production_url, copy.url)
        run, compat = rehearse_here(copy.url)
        restore_s, counts, described = 0.0, copy.row_counts, copy.staging.described
    else:
        with ThreadPoolExecutor(max_workers=1) as pool, Staging.start(staging_url, production_url) as staging:
            digest = pool.submit(file_sha256, backup.path)  # while the staging server starts
            url = staging.ready()
            warnings = _warn(production_url, url)
            try:
                restored = restore_backup(backup, url, clean=staging.overwrites, jobs=jobs, count_rows=False,
                                          checked_sha256=digest.result())
            except StageErrored as exc:
                raise StageErrored(f"could not restore backup {backup.id} into staging: {exc.message}",
                                   where="db.dry_run", hint="the dry run needs a restorable backup of production"
                                   ) from None
            run, compat = rehearse_here(url)
            restore_s, counts, described = restored["duration_s"], restored["row_counts"], staging.described
    result = DryRunResult(ok=run.ok and (compat is None or compat.ok), backup_id=backup.id, staging=described,
                          command=command, restore_s=restore_s, row_counts=counts, run=run, warnings=warnings,
                          duration_s=round(time.monotonic() - started, 3), compat=compat,
                          reused_copy=copy is not None)
    log.info("dry_run_finished", ok=run.ok, backup_id=backup.id, revision_after=run.revision_after,
             duration_s=result.duration_s)
    error = rehearsal_failure(run, compat, described, where="db.dry_run", outputs=result)
    if error is not None:
        raise error
    return result


def rehearsal_failure(run: MigrationRun, compat: CompatResult | None, described: str, *, where: str,
                      outputs: object) -> StageFailed | None:
    """The error a failed rehearsal on the copy ``described`` blocks the deploy with; None when it passed."""
    if not run.ok:
        statement = f"; failed statement: {run.statement}" if run.statement else ""
        return StageFailed(f"the migration failed on a copy of production ({described}): {run.error}{statement}",
                           where=where, hint=failure_hint(run.error, run.log), outputs=outputs)
    if compat is not None and not compat.ok:
        what = "does not serve its requests" if compat.requests else "is not healthy"
        return StageFailed(f"the migration ran on the copy, but the live release {what} on the migrated "
                           f"schema: {compat.error}", where=f"{where} compat",
                           hint="during the deploy (and after a rollback with on_rollback: leave) the live release "
                                "runs on this schema: make the migration backward compatible (expand now, contract "
                                f"in a later deploy); output in {compat.log}", outputs=outputs)
    return None


def _warn(production_url: str, staging_url: str) -> list[str]:
    warnings = compare_servers(production_url, staging_url)
    for warning in warnings:
        log.warning("staging_differs", detail=warning)
    return warnings


def rehearse(url: str, *, command: str, cwd: Path, env: Mapping[str, str], log_path: Path, lock_timeout_s: float,
              statement_timeout_s: float, timeout_s: float | None, redact: Callable[[str], str],
              compat_command: str | None, compat_health_path: str, compat_timeout_s: float = 30.0,
              compat_cwd: Path | None = None, compat_paths: Sequence[str] = (),
              expand: tuple[str | None] | None = None) -> tuple[MigrationRun, CompatResult | None]:
    """Migrate, and (optionally) check the live release, on staging ``url``.

    With ``expand`` (two phases: ``(expand_command,)``, or ``(None,)`` when no expand migration is pending) the
    rehearsal runs as production will: the expand command, the live release's check on the expanded schema (the
    one it serves on), then ``command`` (the contract migrations).
    """
    def migrate(step: str, path: Path) -> MigrationRun:
        return run_migration(url, step, cwd=cwd, env=env, log_path=path, lock_timeout_s=lock_timeout_s,
                             statement_timeout_s=statement_timeout_s, timeout_s=timeout_s, redact=redact)

    first: MigrationRun | None = None
    if expand is not None and expand[0] is not None:
        first = migrate(expand[0], log_path.with_name(log_path.stem + ".expand.log"))
        if not first.ok:
            return first, None
    compat = None
    if compat_command and expand is not None:
        compat = _compat(url, compat_command, compat_cwd or cwd, env, log_path, compat_health_path, compat_paths,
                         compat_timeout_s, redact)
    run = migrate(command, log_path)
    if first is not None:
        changes = {key: sorted({*first.schema_changes.get(key, []), *run.schema_changes.get(key, [])})
                   for key in {*first.schema_changes, *run.schema_changes}}
        run = replace(run, revision_before=first.revision_before, schema_changes=changes)
    if run.ok and compat_command and expand is None:
        compat = _compat(url, compat_command, compat_cwd or cwd, env, log_path, compat_health_path, compat_paths,
                         compat_timeout_s, redact)
    return run, compat


def _compat(url: str, command: str, cwd: Path, env: Mapping[str, str], log_path: Path, health_path: str,
            paths: Sequence[str], timeout_s: float, redact: Callable[[str], str]) -> CompatResult:
    return check_compat(url, command=command, cwd=cwd, env=env, health_path=health_path, paths=paths,
                        timeout_s=timeout_s, redact=redact, log_path=log_path.with_name(log_path.stem + ".compat.log"))
