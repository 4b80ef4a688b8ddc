"""``db.migrate``: the production migration, whole or in two phases (expand before the deploy, contract after).

It runs only after this run's verified backup and successful dry run, under the
PostgreSQL advisory lock (deploypipe.db.migrate). With ``phase: expand`` and
``phase: contract`` (deploypipe.stages.db_phases) one release migrates twice:
what the live release survives before the deploy, the rest once the new release
is verified. A failed contract phase leaves the verified release serving on the
expanded schema: nothing is rolled back, restored or downgraded (the pipeline
gives that stage ``on_failure: stop``, checked when it is loaded).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Literal

from pydantic import Field

from deploypipe.db.migration_run import MigrationRun
from deploypipe.errors import StageFailed
from deploypipe.stages import db_pitr
from deploypipe.stages.base import Compensation, StageResult
from deploypipe.stages.base import Outputs as BaseOutputs
from deploypipe.stages.base import Params as BaseParams
from deploypipe.stages.context import StageContext
from deploypipe.stages.db import DbBackup, DbDryRun
from deploypipe.stages.db_phases import PhaseWork, auto_policy, can_downgrade, phase_work

__all__ = ["DbMigrate"]


class DbMigrate:
    type: ClassVar[str] = "db.migrate"
    description: ClassVar[str] = ("Run the migration on production under a PostgreSQL advisory lock, only after a "
                                  "verified backup and a successful dry run; all at once, or expand migrations "
                                  "before the deploy and contract ones after verification; compensation per "
                                  "on_rollback.")
    touches_production: ClassVar[bool] = True

    class Params(BaseParams):
        database: str = Field(..., description="Database target key.")
        tool: Literal["alembic", "prisma", "sql"] = Field("alembic", description="Migration tool, as db.lint's.")
        command: str | None = Field(None, description=(
            "Migration command, run with DATABASE_URL pointing at production: phase all, and the contract phase. "
            "Needed for alembic, and for prisma (npx prisma migrate deploy) except with phase expand; tool sql: "
            "default deploypipe applies the pending files itself, with its ledger."))
        prisma_dir: str = Field("prisma/migrations", description="Prisma migrations directory (tool prisma).")
        sql_dir: str = Field("migrations", description="Directory of .sql files (tool sql).")
        cwd: str = Field(".", description="Working directory of the command.")
        env: dict[str, str] = Field(default_factory=dict)
        phase: Literal["all", "expand", "contract"] = Field(
            "all", description="all: every pending migration; expand: those before the first contract migration "
                               "(db.lint's phases), before the deploy; contract: the rest, after verification.")
        expand_command: str | None = Field(None, description=(
            "phase expand: {revision} is the last expand migration. Default: alembic upgrade {revision}; for prisma "
            "and sql deploypipe applies them itself (prisma: recorded in _prisma_migrations as prisma migrate "
            "deploy records them)."))
        lock_timeout_s: float = Field(5.0, gt=0, description="lock_timeout for every statement.")
        statement_timeout_s: float = Field(600.0, gt=0, description="statement_timeout for every statement.")
        lock_wait_s: float = Field(60.0, ge=0, description="How long to wait for another pipeline's migration lock.")
        on_rollback: Literal["auto", "leave", "downgrade", "restore"] = Field(
            "auto", description="auto: leave when every applied migration is expand and the dry run proved the "
                                "live release serves its requests on it, else downgrade (without a downgrade, as "
                                "for prisma and sql: keep the schema, reported unverified, exit 4), never restore; "
                                "leave: keep the schema; downgrade: run downgrade_command to the recorded revision; "
                                "restore: restore this run's backup (needs confirmation).")
        downgrade_command: str | None = Field(None, description="{revision} is the one before. Default for "
                                                                "alembic: alembic downgrade {revision}; prisma and "
                                                                "sql have none.")
        restore_confirmed: bool = Field(False, description="Pre-confirm a restore on rollback (CI, no terminal).")
        require_backup: bool = Field(True, description="Refuse without a verified backup in this run.")
        require_dry_run: bool = Field(True, description="Refuse without a successful dry run in this run.")

    class Outputs(BaseOutputs):
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
        phase: Literal["all", "expand", "contract"] = "all"
        migrations: list[str] = Field(default_factory=list, description="The pending migrations this stage applied.")
        waiting: list[str] = Field(default_factory=list, description="phase expand: contract migrations left for "
                                                                     "the contract phase.")

    def plan(self, params: DbMigrate.Params) -> str:
        own = {"prisma": "deploypipe applies them, recorded in _prisma_migrations as prisma migrate deploy does",
               "sql": "deploypipe applies them, recorded in its ledger deploypipe_sql_migrations",
               "alembic": "alembic upgrade {revision}"}[params.tool]
        expand = params.expand_command or own
        command = f"`{params.command}`" if params.command else own
        what = {"all": f"run the pending migrations ({command})",
                "expand": f"run the expand migrations ({expand}; up to the last one before the first contract "
                          "migration)",
                "contract": f"after the new release is verified, run the contract migrations ({command})"
                }[params.phase]
        rollback = params.on_rollback if params.on_rollback != "auto" else (
            "auto (leave when every applied migration is expand and the live release served its requests on the "
            "migrated copy; else " + ("downgrade, dropping what the migration added, counted in the report"
                                      if can_downgrade(params) else "keep the schema and say so, unverified (no "
                                      f"downgrade exists for {params.tool})") + "; never restore)")
        return f"under an advisory lock, {what} on {params.database}; on rollback: {rollback}"

    def run(self, ctx: StageContext, params: DbMigrate.Params) -> StageResult[DbMigrate.Outputs]:
        expand = ctx.latest(DbMigrate.Outputs, lambda o: o.phase == "expand")
        work = phase_work(ctx, params, expand.waiting if expand is not None else None)
        if work.command is None:
            return self._nothing(ctx, params, work)
        from deploypipe.db.migrate import BackupEvidence, DryRunEvidence, MigrateResult, migrate_production

        backup, dry = ctx.latest(DbBackup.Outputs), ctx.latest(DbDryRun.Outputs)
        extra = {"phase": params.phase, "migrations": work.migrations, "waiting": work.waiting}
        try:
            result = migrate_production(
                url=ctx.resources.database_url(params.database), command=work.command,
                cwd=ctx.resources.path(params.cwd),
                env={**ctx.resources.env, **params.env}, log_path=ctx.run_dir / f"{ctx.stage_id}.migrate.log",
                run_id=ctx.run_id,
                backup=BackupEvidence(backup.backup_id, backup.path, backup.verified) if backup else None,
                dry=DryRunEvidence(dry.ok, work.command, dry.backup_id) if dry else None,
                require_backup=params.require_backup, require_dry_run=params.require_dry_run,
                lock_timeout_s=params.lock_timeout_s, statement_timeout_s=params.statement_timeout_s,
                lock_wait_s=params.lock_wait_s, timeout_s=ctx.timeout_s, redact=ctx.resources.redactor.text,
                sleep=ctx.sleep, clock=ctx.clock)
        except StageFailed as exc:
            if not isinstance(exc.outputs, MigrateResult):
                raise
            message, hint = exc.message, exc.hint
            if params.phase == "contract":
                message = (f"the contract phase failed after the new release was verified: {exc.message}; the "
                           f"verified release keeps serving on the expanded schema (revision "
                           f"{exc.outputs.revision_after}); nothing was rolled back, restored or downgraded")
                hint = (f"production differs from the dry run's copy (locks held by live traffic, rows written since "
                        f"the backup): fix the contract migration and release again, it runs again; {exc.hint}")
            if params.tool == "prisma":
                hint = (hint or "") + ("; _prisma_migrations records the failed migration as prisma migrate "
                                       "deploy does (finished_at null, its logs): once fixed, `npx prisma migrate "
                                       "resolve --rolled-back <name>` lets it run again (db.migration_status names "
                                       "it)")
            failed = self.Outputs.model_validate(exc.outputs, from_attributes=True).model_copy(update=extra)
            raise StageFailed(message, where=ctx.where, hint=hint, production_changed=exc.production_changed,
                              outputs=failed) from None
        ctx.emit("migration_finished", ok=result.ok, revision_before=result.revision_before,
                 revision_after=result.revision_after, lock=result.lock, phase=params.phase,
                 migrations=work.migrations, waiting=work.waiting)
        changed = result.production_changed
        summary = (f"{result.revision_before or 'an empty schema'} -> {result.revision_after}" if changed
                   else f"already up to date (revision {result.revision_after or 'none'})")
        if work.waiting:
            summary += f"; contract migration(s) {', '.join(work.waiting)} wait for the contract phase"
        outputs = self.Outputs.model_validate(result, from_attributes=True).model_copy(update=extra)
        return StageResult(outputs=outputs, changed_production=changed, warnings=tuple(result.warnings),
                           summary=summary)

    def _nothing(self, ctx: StageContext, params: DbMigrate.Params, work: PhaseWork) -> StageResult[Outputs]:
        """A phase with no migration to run: the revision is read, production is not touched."""
        from deploypipe.db.migration_run import current_revision
        from deploypipe.db.pg import connect, mask_url

        url = ctx.resources.database_url(params.database)
        with connect(url, autocommit=True) as conn:
            revision = current_revision(conn)
        run = MigrationRun(ok=True, exit_code=None, duration_s=0.0, output_tail="", log="", revision_before=revision,
                           revision_after=revision)
        outputs = self.Outputs(ok=True, database=mask_url(url), command="", revision_before=revision,
                               revision_after=revision, production_changed=False, run=run, phase=params.phase,
                               waiting=work.waiting)
        summary = (f"no expand migration to run; contract migration(s) {', '.join(work.waiting)} wait for the "
                   "contract phase" if params.phase == "expand" else "no contract migration waits")
        return StageResult(outputs=outputs, summary=summary)

    def compensate(self, ctx: StageContext, params: DbMigrate.Params, outputs: DbMigrate.Outputs) -> Compensation:
        point = ctx.latest(DbBackup.Outputs, lambda b: b.backup_id == outputs.backup_id and b.kind == "restore_point")
        if params.on_rollback == "restore" and point is not None:  # back to the restore point through Render's PITR
            return db_pitr.restore(ctx, params, outputs, point)
        from deploypipe.db.kept import droppable_values, kept_rows
        from deploypipe.db.migrate import MigrateResult, compensate_migration

        policy, why = params.on_rollback, ""
        if policy == "auto":
            dry = ctx.latest(DbDryRun.Outputs)
            policy, why = auto_policy(ctx, outputs.phase, outputs.migrations,
                                      bool(dry and dry.compat and dry.compat.proven))
        url = ctx.resources.database_url(params.database)
        if policy == "downgrade" and not can_downgrade(params):
            return _kept_unproven(ctx, params, outputs, why)
        lost = droppable_values(url, outputs.run.schema_changes) if policy == "downgrade" else {}
        fields = {f.name for f in dataclasses.fields(MigrateResult)}
        undo = compensate_migration(
            MigrateResult(**{name: getattr(outputs, name) for name in fields}),
            policy=policy, url=url, cwd=ctx.resources.path(params.cwd),
            env={**ctx.resources.env, **params.env}, log_path=ctx.run_dir / f"{ctx.stage_id}.{policy}.log",
            run_id=ctx.run_id, downgrade_command=params.downgrade_command or "alembic downgrade {revision}",
            confirm=ctx.resources.confirm,
            restore_confirmed=params.restore_confirmed, lock_wait_s=params.lock_wait_s,
            lock_timeout_s=params.lock_timeout_s, statement_timeout_s=params.statement_timeout_s,
            timeout_s=ctx.timeout_s, redact=ctx.resources.redactor.text, sleep=ctx.sleep, clock=ctx.clock)
        backup = ctx.latest(DbBackup.Outputs, lambda b: b.backup_id == outputs.backup_id)
        kept = kept_rows(url, backup.row_counts if backup else {})
        summary = undo.summary + (f" (auto: {why})" if why else "") + "; " + _kept_line(kept, lost)
        details = {**undo.details, "kept": kept, "lost": lost, **({"auto": why} if why else {})}
        return Compensation(action=undo.action, verified=undo.verified, summary=summary, details=details)


def _kept_unproven(ctx: StageContext, params: DbMigrate.Params, outputs: DbMigrate.Outputs, why: str
                   ) -> Compensation:
    """auto without a downgrade (prisma, sql): the schema stays, and the rollback is not verified safe."""
    from deploypipe.db.kept import kept_rows

    if not outputs.production_changed:
        return Compensation(action="nothing_to_do", verified=True,
                            summary=f"the migration did not change production (revision {outputs.revision_before})")
    backup = ctx.latest(DbBackup.Outputs, lambda b: b.backup_id == outputs.backup_id)
    kept = kept_rows(ctx.resources.database_url(params.database), backup.row_counts if backup else {})
    summary = (f"schema kept at {outputs.revision_after} (auto: {why}; {params.tool} migrations have no downgrade "
               "and a restore is never automatic): the previous release runs on it UNPROVEN; a human decides: keep "
               f"it, or restore backup {outputs.backup_id} (on_rollback: restore, confirmed); " + _kept_line(kept, {}))
    return Compensation(action="left_schema", verified=False, summary=summary,
                        details={"policy": "auto", "auto": why, "kept": kept, "revision_after": outputs.revision_after,
                                 "migrations": outputs.migrations})


def _kept_line(kept: dict[str, dict[str, int]], lost: dict[str, int]) -> str:
    written = {table: row["since_backup"] for table, row in kept.items() if row["since_backup"]}
    line = "rows kept: " + (", ".join(f"{table} {row['rows']}" for table, row in kept.items()) or "no table")
    if written:
        line += "; written since the backup and kept: " + ", ".join(f"{t} +{n}" for t, n in written.items())
    lost_values = {what: n for what, n in lost.items() if n}
    return line + ("; lost with the downgrade: " + ", ".join(f"{what}: {n} value(s)" for what, n in lost_values.items())
                   if lost_values else "; nothing lost")
