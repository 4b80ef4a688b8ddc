"""Database stages: ``db.backup``, ``db.migration_status``, ``db.lint``, ``db.dry_run``, ``db.migrate``.

Order of safety: nothing changes production before ``db.backup`` has made and
verified a backup in this run, and ``db.migrate`` refuses to run without that
backup and a successful ``db.dry_run`` on a copy of production (unless the
pipeline opts out, visibly).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from deploypipe.core.findings import Finding, apply_ignores, summarize
from deploypipe.db.compat import CompatResult
from deploypipe.db.migration_run import MigrationRun
from deploypipe.errors import StageErrored, StageFailed
from deploypipe.stages.base import Compensation, Outputs, Params, StageResult
from deploypipe.stages.context import StageContext

__all__ = ["DbBackup", "DbDryRun", "DbLint", "DbMigrate", "DbMigrationStatus", "IgnoreRule"]


class IgnoreRule(Params):
    rule: str = Field(..., description="Rule id to ignore ('*' for all).")
    migration: str = Field(..., description="Migration name or glob it applies to.")
    reason: str = Field(..., min_length=3, description="Why it is safe (shown in the report).")


def _url(ctx: StageContext, key: str) -> str:
    return ctx.resources.targets.databases[key].url


def _scratch(ctx: StageContext) -> Any:
    from deploypipe.db.scratch import ScratchServer

    return ScratchServer(ctx.resources.state_dir / "scratch-pg")


def _path(ctx: StageContext, value: str) -> Path:
    path = Path(value)
    return path if path.is_absolute() else (ctx.resources.project_dir / path)


def _fail_on_findings(ctx: StageContext, findings: list[Finding], what: str) -> None:
    errors = [f for f in findings if f.severity == "error"]
    if errors:
        raise StageFailed(f"{what}: {summarize(findings)}: " + " | ".join(f.render() for f in errors),
                          where=ctx.where)


class _Tool(Params):
    database: str = Field(..., description="Database target key.")
    tool: Literal["alembic", "prisma", "sql"] = Field("alembic", description="Migration tool.")
    alembic_ini: str = Field("alembic.ini", description="alembic.ini (Alembic).")
    prisma_dir: str = Field("prisma/migrations", description="Prisma migrations directory (Prisma).")
    sql_dir: str = Field("migrations", description="Directory of .sql files (sql).")


class DbBackup:
    type: ClassVar[str] = "db.backup"
    description: ClassVar[str] = ("pg_dump the database (streamed, 0600, sha256), verify it by restoring into a scratch "
                                  "database and comparing row counts; keep the last N.")
    touches_production: ClassVar[bool] = False

    class Params(Params):
        database: str = Field(..., description="Database target key.")
        dir: str = Field(".deploypipe/backups", description="Where backups are written (mode 0700 / files 0600).")
        format: Literal["custom", "directory"] = "custom"
        jobs: int | None = Field(None, ge=1, description="Parallel dump jobs (directory format).")
        keep: int = Field(10, ge=1, description="Backups to keep.")
        verify: bool = Field(True, description="Restore into a scratch database and compare row counts.")
        render_export: bool = Field(False, description="Also trigger a Render Postgres export (render_postgres target).")

    class Outputs(Outputs):
        backup_id: str
        path: str
        sha256: str
        size_bytes: int
        duration_s: float
        verified: bool
        server_version: int
        row_counts: dict[str, int] = Field(default_factory=dict)
        removed: list[str] = Field(default_factory=list, description="Older backups removed by retention.")
        render_export: str | None = Field(None, description="Render Postgres id of a requested export.")

    def plan(self, params: DbBackup.Params) -> str:
        return f"pg_dump {params.database} to {params.dir} ({params.format}), verify={params.verify}, keep {params.keep}"

    def run(self, ctx: StageContext, params: DbBackup.Params) -> StageResult[DbBackup.Outputs]:
        from deploypipe.db.backup import create_backup, retain, verify_backup

        directory = _path(ctx, params.dir)
        backup = create_backup(_url(ctx, params.database), directory, run_id=ctx.run_id, label=ctx.pipeline_name,
                               fmt=params.format, jobs=params.jobs)
        ctx.emit("backup_created", backup_id=backup.id, path=backup.path, sha256=backup.sha256,
                 size_bytes=backup.size_bytes, duration_s=backup.duration_s, server_version=backup.server_version)
        warnings: list[str] = []
        if params.verify:
            scratch = _scratch(ctx)
            result = verify_backup(backup, scratch.create, scratch.drop)
            if not result.ok:
                raise StageFailed(f"backup {backup.id} failed verification: {result.problem}",
                                  where=ctx.where, hint="production is untouched; investigate the dump")
            backup.verified = True
            backup.save()
            ctx.emit("backup_verified", backup_id=backup.id, checks=result.checks)
        else:
            warnings.append("backup NOT verified (verify: false)")
        removed = retain(directory, params.keep)
        export: str | None = None
        target = ctx.resources.targets.databases[params.database]
        if params.render_export:
            if not target.render_postgres:
                warnings.append("render_export: set targets.databases.<key>.render_postgres to export on Render")
            else:
                client = ctx.resources.render
                postgres = client.find_postgres(target.render_postgres)
                client.create_postgres_export(postgres.id)
                export = postgres.id
                ctx.emit("render_export_requested", postgres_id=postgres.id)
        outputs = self.Outputs(backup_id=backup.id, path=backup.path, sha256=backup.sha256, size_bytes=backup.size_bytes,
                               duration_s=backup.duration_s, verified=bool(backup.verified),
                               server_version=backup.server_version, row_counts=backup.row_counts,
                               removed=[str(r) for r in removed], render_export=export)
        return StageResult(outputs=outputs, warnings=tuple(warnings),
                           summary=f"{backup.id}: {backup.size_bytes} bytes, {sum(backup.row_counts.values())} rows, "
                                   f"{'verified' if backup.verified else 'UNVERIFIED'}")


class Resolved(Outputs):
    """A failed Prisma migration marked applied after each object it creates was found."""

    migration: str
    verified_objects: list[str]


class DbMigrationStatus:
    type: ClassVar[str] = "db.migration_status"
    description: ClassVar[str] = ("Read-only migration state checks (Alembic heads/unknown revisions; Prisma failed, "
                                  "rolled-back, edited, missing and pending migrations), with safe remedies.")
    touches_production: ClassVar[bool] = False

    class Params(_Tool):
        resolve: bool = Field(False, description="Prisma: mark a failed-but-applied migration applied, only after "
                                                 "verifying every object it creates exists.")

    class Outputs(Outputs):
        tool: str
        current: list[str] = Field(default_factory=list, description="Alembic: the database's revisions.")
        heads: list[str] = Field(default_factory=list, description="Alembic: the repository's heads.")
        applied: list[str] = Field(default_factory=list, description="Prisma: applied migrations.")
        failed: list[str] = Field(default_factory=list, description="Prisma: migrations recorded as failed.")
        pending: list[str] = Field(default_factory=list)
        pending_count: int = 0
        findings: list[Finding] = Field(default_factory=list)
        resolved: list[Resolved] = Field(default_factory=list, description="Failed migrations marked applied.")

    def plan(self, params: DbMigrationStatus.Params) -> str:
        return f"check {params.tool} migration state of {params.database}" + (" (resolve verified)" if params.resolve else "")

    def run(self, ctx: StageContext, params: DbMigrationStatus.Params) -> StageResult[DbMigrationStatus.Outputs]:
        from deploypipe.db import prisma
        from deploypipe.db.alembic_repo import AlembicRepo
        from deploypipe.db.pg import connect
        from deploypipe.db.status import alembic_status, prisma_status

        resolved: list[Resolved] = []
        with connect(_url(ctx, params.database)) as conn:
            if params.tool == "alembic":
                findings, state = alembic_status(conn, AlembicRepo(_path(ctx, params.alembic_ini)))
            elif params.tool == "prisma":
                directory = _path(ctx, params.prisma_dir)
                findings, state = prisma_status(conn, directory)
                if params.resolve:
                    for name in state["failed"]:
                        path = prisma.disk_migrations(directory).get(name)
                        if path is None:
                            continue
                        verified = prisma.resolve_applied(conn, name, path)  # raises StageFailed when incomplete
                        ctx.emit("migration_resolved", migration=name, verified_objects=verified)
                        resolved.append(Resolved(migration=name, verified_objects=verified))
                    if resolved:
                        findings, state = prisma_status(conn, directory)
            else:
                raise StageErrored("db.migration_status supports tool alembic or prisma", where=ctx.where)
        for finding in findings:
            ctx.emit("migration_finding", **finding.as_dict())
        _fail_on_findings(ctx, findings, f"{params.tool} migration state")
        outputs = self.Outputs(**state, findings=findings, resolved=resolved)
        return StageResult(outputs=outputs, changed_production=bool(resolved),
                           warnings=tuple(f.render() for f in findings if f.severity == "warning"),
                           summary=f"{summarize(findings)}; {outputs.pending_count} pending"
                                   + (f"; resolved {', '.join(r.migration for r in resolved)}" if resolved else ""))

    def compensate(self, ctx: StageContext, params: DbMigrationStatus.Params,
                   outputs: DbMigrationStatus.Outputs) -> Compensation:
        """Put resolved rows back to 'failed', as they were."""
        from deploypipe.db.pg import connect

        names = [r.migration for r in outputs.resolved]
        with connect(_url(ctx, params.database)) as conn:
            for name in names:
                conn.execute("update _prisma_migrations set finished_at = null, applied_steps_count = 0 "
                             "where migration_name = %s", (name,))
            conn.commit()
        return Compensation(action="unresolved", verified=True, summary=f"marked {', '.join(names)} failed again",
                            details={"migrations": names})


def _alembic_pending_sources(ctx: StageContext, params: Any, conn: Any) -> list[tuple[str, str | None, Path | None]]:
    """(migration, its offline SQL, its script) for each pending Alembic revision."""
    import re

    from deploypipe.db.alembic_repo import AlembicRepo

    repo = AlembicRepo(_path(ctx, params.alembic_ini))
    current = AlembicRepo.db_revisions(conn)
    pending = repo.pending(current) if all(repo.knows(r) for r in current) else []
    if not pending:
        return []
    try:
        sql = repo.offline_sql(current, {"DATABASE_URL": _url(ctx, params.database)})
    except StageErrored as exc:  # e.g. a migration whose upgrade() cannot run offline: the AST rules still run
        ctx.emit("offline_sql_unavailable", error=exc.message)
        sql = ""
    chunks: dict[str, str] = {}
    parts = re.split(r"^-- Running upgrade (?:\S*) -> (\S+)\s*$", sql, flags=re.M)
    for index in range(1, len(parts), 2):
        chunks[parts[index]] = parts[index + 1]
    return [(rev.revision, chunks.get(rev.revision), Path(rev.path)) for rev in pending]


class DbLint:
    type: ClassVar[str] = "db.lint"
    description: ClassVar[str] = ("Lint pending migrations before anything runs: squawk plus deploypipe's rules "
                                  "(extension versions the production server lacks, op.* monkey-patching, NOT NULL "
                                  "without default, unique indexes on existing tables).")
    touches_production: ClassVar[bool] = False

    class Params(_Tool):
        squawk: bool = Field(True, description="Run squawk over the SQL.")
        squawk_excludes: list[str] | None = Field(None, description="squawk rules to skip (default: timeout and "
                                                                    "style rules deploypipe handles itself).")
        ignore: list[IgnoreRule] = Field(default_factory=list, description="Findings to ignore, each with a reason.")

    class Outputs(Outputs):
        migrations: list[str] = Field(default_factory=list, description="The pending migrations linted.")
        findings: list[Finding] = Field(default_factory=list)

    def plan(self, params: DbLint.Params) -> str:
        return f"lint pending {params.tool} migrations against {params.database}'s server" + (" with squawk" if params.squawk else "")

    def run(self, ctx: StageContext, params: DbLint.Params) -> StageResult[DbLint.Outputs]:
        from deploypipe.db import lint, prisma
        from deploypipe.db.pg import connect

        sources: list[tuple[str, str | None, Path | None]] = []
        with connect(_url(ctx, params.database)) as conn:
            available: dict[str, set[str]] = {}
            for name, version in conn.execute("select name, version from pg_available_extension_versions"):
                available.setdefault(name, set()).add(version)
            if params.tool == "alembic":
                sources = _alembic_pending_sources(ctx, params, conn)
            elif params.tool == "prisma":
                applied = {r.migration_name for r in prisma.db_rows(conn) if r.finished_at is not None}
                sources = [(name, path.read_text(encoding="utf-8"), None)
                           for name, path in prisma.disk_migrations(_path(ctx, params.prisma_dir)).items()
                           if name not in applied]
            else:
                sources = [(p.name, p.read_text(encoding="utf-8"), None)
                           for p in sorted(_path(ctx, params.sql_dir).glob("*.sql"))]
        findings: list[Finding] = []
        excludes = lint.DEFAULT_SQUAWK_EXCLUDES if params.squawk_excludes is None else tuple(params.squawk_excludes)
        if params.tool == "alembic" and params.squawk_excludes is None:
            excludes += ("transaction-nesting",)  # Alembic's offline SQL wraps the range in BEGIN/COMMIT
        for name, sql_text, script in sources:
            if script is not None:
                findings += lint.lint_python(script, name)
            if sql_text:
                findings += lint.lint_sql(sql_text, name, available)
                if params.squawk:
                    findings += lint.squawk(sql_text, name, excludes)
        findings = apply_ignores(findings, params.ignore)
        for finding in findings:
            ctx.emit("lint_finding", **finding.as_dict())
        _fail_on_findings(ctx, findings, f"migration lint of {len(sources)} pending migration(s)")
        return StageResult(outputs=self.Outputs(migrations=[s[0] for s in sources], findings=findings),
                           warnings=tuple(f.render() for f in findings if f.severity == "warning"),
                           summary=f"{len(sources)} pending migration(s): {summarize(findings)}")


class DbDryRun:
    type: ClassVar[str] = "db.dry_run"
    description: ClassVar[str] = ("Restore this run's verified backup into a staging database and run the migration "
                                  "command there first; a failure blocks the deploy with the migration's own error. "
                                  "Optionally start the live release on the migrated copy (compat_command).")
    touches_production: ClassVar[bool] = False

    class Params(Params):
        database: str = Field(..., description="Database target key (production).")
        command: str = Field(..., description="Migration command, run with DATABASE_URL pointing at staging.")
        cwd: str = Field(".", description="Working directory of the command.")
        staging_url: str | None = Field(None, description="Staging database to overwrite (default: an ephemeral "
                                                          "embedded PostgreSQL).")
        env: dict[str, str] = Field(default_factory=dict)
        lock_timeout_s: float = Field(5.0, gt=0, description="lock_timeout for every statement.")
        statement_timeout_s: float = Field(600.0, gt=0, description="statement_timeout for every statement.")
        restore_jobs: int | None = Field(None, ge=1, description="Parallel pg_restore jobs (default: up to 4).")
        compat_command: str | None = Field(None, description="Start command of the live release: it must become "
                                                             "healthy on the migrated copy (rollback safety).")
        compat_health_path: str = Field("/health", description="Health path for the compat check.")

    class Outputs(Outputs):
        ok: bool
        command: str
        backup_id: str
        staging: str = Field(..., description="Where the rehearsal ran (no secrets).")
        duration_s: float
        restore_s: float = 0.0
        row_counts: dict[str, int] = Field(default_factory=dict, description="Rows per table on the staging copy.")
        run: MigrationRun
        warnings: list[str] = Field(default_factory=list)
        compat: CompatResult | None = None

    def plan(self, params: DbDryRun.Params) -> str:
        where = "the given staging database" if params.staging_url else "an ephemeral embedded PostgreSQL"
        compat = "; then start the live release on it" if params.compat_command else ""
        return f"restore this run's backup into {where} and run `{params.command}` there{compat}"

    def run(self, ctx: StageContext, params: DbDryRun.Params) -> StageResult[DbDryRun.Outputs]:
        from deploypipe.db.backup import load_backup
        from deploypipe.db.dryrun import dry_run

        backup_out = ctx.latest(DbBackup.Outputs)
        if backup_out is None or not backup_out.verified:
            raise StageFailed("no verified backup in this run to make a staging copy from",
                              where=ctx.where, hint="put a db.backup stage (verify: true) before db.dry_run")
        if params.staging_url:
            ctx.resources.redactor.add(params.staging_url)
        log_path = ctx.run_dir / f"{ctx.stage_id}.dry_run.log"
        try:
            result = dry_run(backup=load_backup(Path(backup_out.path).with_suffix(".json")), production_url=_url(ctx, params.database), command=params.command,
                             cwd=_path(ctx, params.cwd), env={**ctx.resources.env, **params.env}, log_path=log_path,
                             staging_url=params.staging_url or None, lock_timeout_s=params.lock_timeout_s,
                             statement_timeout_s=params.statement_timeout_s, timeout_s=ctx.timeout_s,
                             redact=ctx.resources.redactor.text, restore_jobs=params.restore_jobs,
                             compat_command=params.compat_command, compat_health_path=params.compat_health_path)
        except StageFailed as exc:
            ctx.emit("dry_run_finished", ok=False, error=exc.message)
            failed = self.Outputs.model_validate(exc.outputs, from_attributes=True) if exc.outputs else None
            raise StageFailed(exc.message, where=ctx.where, hint=exc.hint, outputs=failed) from None
        run = result.run
        for warning in result.warnings:
            ctx.emit("staging_differs", warning=warning)
        outputs = self.Outputs.model_validate(result, from_attributes=True)
        ctx.emit("dry_run_finished", ok=True, duration_s=result.duration_s, revision_after=run.revision_after)
        changes = ", ".join(f"{k}: {len(v)}" for k, v in run.schema_changes.items()) or "no schema change"
        return StageResult(outputs=outputs, warnings=tuple(result.warnings),
                           summary=f"{run.revision_before or 'an empty schema'} -> {run.revision_after} in "
                                   f"{result.duration_s:.1f}s ({changes})"
                                   + ("; live release healthy on it" if result.compat else ""))


class DbMigrate:
    type: ClassVar[str] = "db.migrate"
    description: ClassVar[str] = ("Run the migration on production under a PostgreSQL advisory lock, only after a "
                                  "verified backup and a successful dry run; compensation per on_rollback.")
    touches_production: ClassVar[bool] = True

    class Params(Params):
        database: str = Field(..., description="Database target key.")
        command: str = Field(..., description="Migration command, run with DATABASE_URL pointing at production.")
        cwd: str = Field(".", description="Working directory of the command.")
        env: dict[str, str] = Field(default_factory=dict)
        lock_timeout_s: float = Field(5.0, gt=0, description="lock_timeout for every statement.")
        statement_timeout_s: float = Field(600.0, gt=0, description="statement_timeout for every statement.")
        lock_wait_s: float = Field(60.0, ge=0, description="How long to wait for another pipeline's migration lock.")
        on_rollback: Literal["leave", "downgrade", "restore"] = Field(
            "leave", description="leave: keep the schema (expand/contract); downgrade: run downgrade_command to the "
                                 "recorded revision; restore: restore this run's backup (needs confirmation).")
        downgrade_command: str = Field("alembic downgrade {revision}", description="{revision} is the one before.")
        restore_confirmed: bool = Field(False, description="Pre-confirm a restore on rollback (CI, no terminal).")
        require_backup: bool = Field(True, description="Refuse without a verified backup in this run.")
        require_dry_run: bool = Field(True, description="Refuse without a successful dry run in this run.")

    class Outputs(Outputs):
        ok: bool
        database: str = Field(..., description="The database, its URL masked.")
        command: str
        revision_before: str | None = None
        revision_after: str | None = None
        production_changed: bool
        run: MigrationRun
        backup_id: str | None = None
        backup_path: str | None = None
        lock: str = Field("", description="The advisory lock held while migrating.")
        warnings: list[str] = Field(default_factory=list)

    def plan(self, params: DbMigrate.Params) -> str:
        return (f"under an advisory lock, run `{params.command}` on {params.database}; on rollback: {params.on_rollback}")

    def run(self, ctx: StageContext, params: DbMigrate.Params) -> StageResult[DbMigrate.Outputs]:
        from deploypipe.db.migrate import BackupEvidence, DryRunEvidence, MigrateResult, migrate_production

        backup, dry = ctx.latest(DbBackup.Outputs), ctx.latest(DbDryRun.Outputs)
        try:
            result = migrate_production(
                url=_url(ctx, params.database), command=params.command, cwd=_path(ctx, params.cwd),
                env={**ctx.resources.env, **params.env}, log_path=ctx.run_dir / f"{ctx.stage_id}.migrate.log",
                run_id=ctx.run_id,
                backup=BackupEvidence(backup.backup_id, backup.path, backup.verified) if backup else None,
                dry=DryRunEvidence(dry.ok, dry.command, dry.backup_id) if dry else None,
                require_backup=params.require_backup, require_dry_run=params.require_dry_run,
                lock_timeout_s=params.lock_timeout_s, statement_timeout_s=params.statement_timeout_s,
                lock_wait_s=params.lock_wait_s, timeout_s=ctx.timeout_s, redact=ctx.resources.redactor.text,
                sleep=ctx.sleep, clock=ctx.clock)
        except StageFailed as exc:
            if not isinstance(exc.outputs, MigrateResult):
                raise
            raise StageFailed(exc.message, where=ctx.where, hint=exc.hint, production_changed=exc.production_changed,
                              outputs=self.Outputs.model_validate(exc.outputs, from_attributes=True)) from None
        ctx.emit("migration_finished", ok=result.ok, revision_before=result.revision_before,
                 revision_after=result.revision_after, lock=result.lock)
        changed = result.production_changed
        return StageResult(outputs=self.Outputs.model_validate(result, from_attributes=True), changed_production=changed,
                           warnings=tuple(result.warnings),
                           summary=f"{result.revision_before or 'an empty schema'} -> {result.revision_after}" if changed
                           else f"already up to date (revision {result.revision_after or 'none'})")

    def compensate(self, ctx: StageContext, params: DbMigrate.Params, outputs: DbMigrate.Outputs) -> Compensation:
        from deploypipe.db.migrate import MigrateResult, compensate_migration

        undo = compensate_migration(
            MigrateResult(**{name: getattr(outputs, name) for name in DbMigrate.Outputs.model_fields}), policy=params.on_rollback, url=_url(ctx, params.database), cwd=_path(ctx, params.cwd),
            env={**ctx.resources.env, **params.env}, log_path=ctx.run_dir / f"{ctx.stage_id}.{params.on_rollback}.log",
            run_id=ctx.run_id, downgrade_command=params.downgrade_command, confirm=ctx.resources.confirm,
            restore_confirmed=params.restore_confirmed, lock_wait_s=params.lock_wait_s,
            lock_timeout_s=params.lock_timeout_s, statement_timeout_s=params.statement_timeout_s,
            timeout_s=ctx.timeout_s, redact=ctx.resources.redactor.text, sleep=ctx.sleep, clock=ctx.clock)
        return Compensation(action=undo.action, verified=undo.verified, summary=undo.summary, details=undo.details)
