"""Read-only migration state checks against production, for Alembic and Prisma.

Each finding says what the state means and the safe remedy (see the seeds:
a migration left *failed* while its tables existed; five deploys failing on
unnoticed migration problems).
"""

from __future__ import annotations

from pathlib import Path

import psycopg

from deploypipe.core.findings import Finding
from deploypipe.db import prisma
from deploypipe.db.alembic_repo import AlembicRepo

__all__ = ["alembic_status", "prisma_status"]


def alembic_status(conn: psycopg.Connection, repo: AlembicRepo) -> tuple[list[Finding], dict]:
    findings: list[Finding] = []
    heads = repo.heads()
    current = AlembicRepo.db_revisions(conn)
    if len(heads) > 1:
        findings.append(Finding("alembic-multiple-heads", "error", f"the repository has {len(heads)} heads: "
                                f"{', '.join(sorted(heads))}; `alembic upgrade head` cannot choose",
                                "merge them with `alembic merge heads -m merge` and commit the merge revision"))
    unknown = [rev for rev in current if not repo.knows(rev)]
    for rev in unknown:
        findings.append(Finding("alembic-unknown-db-revision", "error",
                                f"the database is at revision {rev}, which this repository does not contain (is an "
                                "older commit being deployed, or was a migration file deleted?)",
                                "deploy a commit that contains the revision, or restore the migration file; never "
                                "stamp blindly", subject="migration " + rev))
    pending = [] if unknown else repo.pending(current)
    if not current:
        findings.append(Finding("alembic-no-version-table", "info", "the database has no alembic_version: every "
                                "migration will run", "expected for a new database"))
    if pending:
        findings.append(Finding("alembic-pending", "info", f"{len(pending)} pending: "
                                + ", ".join(f"{r.revision} ({(r.doc or '').strip()[:40]})" for r in pending),
                                "they run in db.dry_run on a staging copy, then in db.migrate"))
    state = {"tool": "alembic", "current": current, "heads": heads, "pending": [r.revision for r in pending],
             "pending_count": len(pending)}
    return findings, state


def prisma_status(conn: psycopg.Connection, migrations_dir: Path) -> tuple[list[Finding], dict]:
    findings: list[Finding] = []
    on_disk = prisma.disk_migrations(migrations_dir)
    rows = prisma.db_rows(conn)
    applied = {r.migration_name for r in rows if r.finished_at is not None and r.rolled_back_at is None}
    failed = [r for r in rows if r.failed]
    for row in failed:
        path = on_disk.get(row.migration_name)
        missing = prisma.missing_objects(conn, path.read_text(encoding="utf-8")) if path else None
        if missing == []:
            remedy = ("every object it creates exists, so it was applied and only its record is stale: "
                      "`db.migration_status` with `resolve: true` marks it applied (verified), instead of a blind "
                      "`migrate resolve --applied ... || true`")
        elif missing:
            remedy = (f"it did NOT finish: missing {', '.join(missing)}; repair the schema by hand, or mark it rolled "
                      f"back (`prisma migrate resolve --rolled-back {row.migration_name}`) so it runs again")
        else:
            remedy = "its migration.sql is not in this repository; deploy the commit that has it"
        log_line = (row.logs or "").strip().splitlines()
        findings.append(Finding("prisma-failed-migration", "error", f"migration started {row.started_at} but never "
                                f"finished{': ' + log_line[-1][:120] if log_line else ''}; Prisma refuses to apply "
                                "anything until it is resolved (P3009/P3018)", remedy,
                                subject="migration " + row.migration_name))
    for row in rows:
        if row.rolled_back_at is not None:
            findings.append(Finding("prisma-rolled-back", "info", "marked rolled back; it will run again",
                                    subject="migration " + row.migration_name))
        path = on_disk.get(row.migration_name)
        if path is None:
            findings.append(Finding("prisma-missing-on-disk", "error", "recorded in the database but not in this "
                                    "repository (deploying an older commit?)", "deploy a commit that contains it",
                                    subject="migration " + row.migration_name))
        elif row.finished_at is not None and row.checksum != prisma.checksum(path):
            findings.append(Finding("prisma-checksum-mismatch", "warning", "migration.sql changed after it was applied",
                                    "never edit an applied migration; add a new one",
                                    subject="migration " + row.migration_name))
    pending = [name for name in on_disk if name not in applied and name not in {r.migration_name for r in failed}]
    if pending:
        findings.append(Finding("prisma-pending", "info", f"{len(pending)} pending: {', '.join(pending)}",
                                "they run in db.dry_run on a staging copy, then in db.migrate"))
    state = {"tool": "prisma", "applied": sorted(applied), "failed": [r.migration_name for r in failed],
             "pending": pending, "pending_count": len(pending)}
    return findings, state
