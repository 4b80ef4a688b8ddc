"""The database stages that make and use a copy of production: ``db.backup`` and ``db.dry_run``.

Order of safety: nothing changes production before ``db.backup`` has made and
verified a backup in this run, and ``db.migrate`` (:mod:`deploypipe.stages.db_migrate`)
refuses to run without that backup and a successful ``db.dry_run`` on a copy of
production (unless the pipeline opts out, visibly). The read-only checks are in
:mod:`deploypipe.stages.db_checks`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, ClassVar, Literal

from pydantic import Field

from deploypipe.db.compat import CompatResult
from deploypipe.db.migration_run import MigrationRun
from deploypipe.db.progress import Progress
from deploypipe.errors import StageFailed
from deploypipe.stages import db_pitr
from deploypipe.stages.base import Outputs as BaseOutputs
from deploypipe.stages.base import Params as BaseParams
from deploypipe.stages.base import StageResult
from deploypipe.stages.context import StageContext
from deploypipe.stages.db_compat import compat_summary, live_release_for
from deploypipe.stages.db_phases import dry_run_expand
from deploypipe.stages.render_export import RenderExport

__all__ = ["DbBackup", "DbDryRun"]


_COPY = "verified-copy:{}"


def _later_dry_run(ctx: StageContext, database: str) -> DbDryRun.Params | None:
    """The parameters of a db.dry_run later in this pipeline on the same database, if there is one."""
    return next((p for p in ctx.later.values() if isinstance(p, DbDryRun.Params) and p.database == database), None)


def _report_progress(ctx: StageContext) -> Callable[[Progress], None]:
    def report(progress: Progress) -> None:
        fields = progress.fields()
        ctx.emit("db_progress", **fields)
        ctx.log.info("db_progress", **fields)
    return report


class DbBackup:
    type: ClassVar[str] = "db.backup"
    description: ClassVar[str] = ("pg_dump the database (0600, sha256) and verify it in the same pass: the growing "
                                  "file is restored into staging (the later db.dry_run's copy, else a throwaway "
                                  "server) and row counts and small-table hashes are compared; keep the last N.")
    touches_production: ClassVar[bool] = False

    class Params(BaseParams):
        database: str = Field(..., description="Database target key.")
        dir: str = Field(".deploypipe/backups", description="Where backups are written (mode 0700 / files 0600).")
        format: Literal["custom", "directory"] = Field(
            "custom", description="custom: one file, restored while it is written; directory: pg_dump -Fd -j N "
                                  "(N parallel COPYs on production), restored after the dump.")
        jobs: int | None = Field(None, ge=1, description="Parallel jobs for index builds (and the directory dump); "
                                                        "default one per core, up to 4.")
        compress: int = Field(1, ge=1, le=9, description="pg_dump's gzip level: 1 is twice as fast as 6 for a "
                                                         "file about 6% larger (0 would hide damaged text).")
        keep: int = Field(10, ge=1, description="Backups to keep.")
        verify: bool = Field(True, description="Restore into staging and compare row counts and checksums.")
        render_export: bool = Field(False, description="Also have Render export the database (render_postgres target), "
                                                       "started before the dump so both copies are made at once.")
        render_export_wait_s: float = Field(900.0, ge=0, description="How long to wait for Render to list the "
                                                                     "export after our backup is verified (0: do "
                                                                     "not wait).")

    class Outputs(BaseOutputs):
        backup_id: str
        path: str
        sha256: str
        size_bytes: int
        duration_s: float
        verified: bool
        verified_on: str = Field("", description="Where the restore that verified it ran.")
        server_version: int
        compression: int = 6
        row_counts: dict[str, int] = Field(default_factory=dict)
        checks: list[dict[str, Any]] = Field(default_factory=list, description="The verification's checks.")
        timings: dict[str, float] = Field(default_factory=dict, description="Seconds from the start: dump, "
                                                                            "stream, indexes, verified.")
        removed: list[str] = Field(default_factory=list, description="Older backups removed by retention.")
        render_export: str | None = Field(None, description="Render Postgres id of a requested export.")
        render_export_id: str | None = Field(None, description="The export Render listed (None: not waited for, or "
                                                               "not listed in time).")
        kind: Literal["dump", "restore_point"] = Field("dump", description="dump: a pg_dump file; restore_point: a "
                                                                           "moment Render can recover to (mode pitr).")
        restore_time: str | None = Field(None, description="restore_point: the moment, UTC (ISO 8601).")
        postgres_id: str | None = Field(None, description="restore_point: the Render Postgres it belongs to.")

    def plan(self, params: DbBackup.Params) -> str:
        verify = ("verified by restoring it into staging while it is written" if params.verify
                  else "NOT verified (verify: false)")
        return f"pg_dump {params.database} to {params.dir} ({params.format}, gzip {params.compress}), {verify}; " \
               f"keep {params.keep}"

    def run(self, ctx: StageContext, params: DbBackup.Params) -> StageResult[DbBackup.Outputs]:
        if db_pitr.takes_pitr(ctx, params.database):  # a restore point, not a dump
            return db_pitr.backup(ctx, params, self.Outputs)
        from deploypipe.db.backup import create_backup, retain
        from deploypipe.db.staging import Staging
        from deploypipe.db.verified import take_verified_backup, take_verified_directory_backup

        directory = ctx.resources.path(params.dir)
        url = ctx.resources.database_url(params.database)
        warnings: list[str] = []
        checks: list[dict[str, Any]] = []
        timings: dict[str, float] = {}
        export = RenderExport.start(ctx, params.database, warnings) if params.render_export else None
        if params.verify:
            dry = _later_dry_run(ctx, params.database)
            if dry is not None and dry.staging_url:
                ctx.resources.redactor.add(dry.staging_url)
            staging = Staging.start(dry.staging_url if dry else None, url)
            try:
                if params.format == "custom":
                    copy = take_verified_backup(url, directory, run_id=ctx.run_id, staging=staging,
                                                label=ctx.pipeline_name, compress=params.compress, jobs=params.jobs,
                                                report=_report_progress(ctx))
                else:
                    copy = take_verified_directory_backup(url, directory, run_id=ctx.run_id, staging=staging,
                                                          label=ctx.pipeline_name, compress=params.compress,
                                                          jobs=params.jobs)
            except BaseException:
                staging.close()
                raise
            backup, checks, timings = copy.backup, copy.checks, copy.timings
            if dry is not None:  # the dry run migrates this copy instead of restoring the dump again
                ctx.resources.hold(_COPY.format(params.database), copy)
            else:
                copy.close()
            ctx.emit("backup_verified", backup_id=backup.id, checks=checks, timings=timings,
                     kept_for_dry_run=dry is not None)
        else:
            backup = create_backup(url, directory, run_id=ctx.run_id, label=ctx.pipeline_name, fmt=params.format,
                                   jobs=params.jobs, compress=params.compress)
            warnings.append("backup NOT verified (verify: false)")
        ctx.emit("backup_created", backup_id=backup.id, path=backup.path, sha256=backup.sha256,
                 size_bytes=backup.size_bytes, duration_s=backup.duration_s, server_version=backup.server_version)
        removed = retain(directory, params.keep)
        exported = export.wait(ctx, params.render_export_wait_s, warnings) if export is not None else None
        outputs = self.Outputs(backup_id=backup.id, path=backup.path, sha256=backup.sha256,
                               size_bytes=backup.size_bytes, duration_s=backup.duration_s,
                               verified=bool(backup.verified), verified_on=str(backup.extra.get("verified_on", "")),
                               server_version=backup.server_version, compression=backup.compression,
                               row_counts=backup.row_counts, checks=checks, timings=timings,
                               removed=[str(r) for r in removed],
                               render_export=export.postgres_id if export is not None else None,
                               render_export_id=exported.id if exported is not None else None)
        return StageResult(outputs=outputs, warnings=tuple(warnings),
                           summary=f"{backup.id}: {backup.size_bytes} bytes, {sum(backup.row_counts.values())} rows, "
                                   f"{'verified' if backup.verified else 'UNVERIFIED'}")


class DbDryRun:
    type: ClassVar[str] = "db.dry_run"
    description: ClassVar[str] = ("Run the migration command on the staging copy db.backup verified (restoring this "
                                  "run's backup only when there is no such copy, e.g. on resume); a failure blocks "
                                  "the deploy with the migration's own error. Optionally start the live release "
                                  "(its live commit, compat_service) on the copy, migrated as production will be, "
                                  "and send it real GET requests: any 5xx blocks (compat_command).")
    touches_production: ClassVar[bool] = False

    class Params(BaseParams):
        database: str = Field(..., description="Database target key (production).")
        command: str = Field(..., description="Migration command, run with DATABASE_URL pointing at staging.")
        cwd: str = Field(".", description="Working directory of the command.")
        staging_url: str | None = Field(None, description="Staging database to overwrite (default: an ephemeral "
                                                          "embedded PostgreSQL).")
        env: dict[str, str] = Field(default_factory=dict)
        lock_timeout_s: float = Field(5.0, gt=0, description="lock_timeout for every statement.")
        statement_timeout_s: float = Field(600.0, gt=0, description="statement_timeout for every statement.")
        restore_jobs: int | None = Field(None, ge=1, description="Parallel pg_restore jobs when the dump must be "
                                                                "restored again (default: up to 4).")
        compat_command: str | None = Field(None, description="Start command of the live release: it must become "
                                                             "healthy on the migrated copy and answer its sampled "
                                                             "GET requests without a 5xx (rollback safety).")
        compat_health_path: str = Field("/health", description="Health path for the compat check.")
        compat_service: str | None = Field(None, description="Service target whose live release is checked: its "
                                                              "live commit (render.preflight) from the target's "
                                                              "repo_dir, sent its logged GET paths and smoke paths.")
        compat_dir: str = Field(".", description="Directory of that checkout to start compat_command in (rootDir).")
        compat_paths: list[str] = Field(default_factory=list, description="More GET paths to send the live release.")
        compat_sample: int = Field(20, ge=0, description="How many distinct GET paths of the service's request "
                                                         "logs to send (the most frequent).")
        compat_logs_s: float = Field(3600.0, gt=0, description="How far back the request logs are read.")

    class Outputs(BaseOutputs):
        ok: bool
        command: str
        backup_id: str
        staging: str = Field(..., description="Where the rehearsal ran (no secrets).")
        duration_s: float
        restore_s: float = 0.0
        reused_copy: bool = Field(False, description="Migrated the copy db.backup verified (no second restore).")
        row_counts: dict[str, int] = Field(default_factory=dict, description="Rows per table on the staging copy.")
        run: MigrationRun
        warnings: list[str] = Field(default_factory=list)
        compat: CompatResult | None = None

    def plan(self, params: DbDryRun.Params) -> str:
        where = "the given staging database" if params.staging_url else "an ephemeral embedded PostgreSQL"
        compat = ("; then start the live release on it and send it real GET requests"
                  if params.compat_command else "")
        return f"run `{params.command}` on the backup's verified copy in {where}{compat}"

    def run(self, ctx: StageContext, params: DbDryRun.Params) -> StageResult[DbDryRun.Outputs]:
        if db_pitr.takes_pitr(ctx, params.database, ctx.latest(DbBackup.Outputs)):  # on a PITR clone
            return db_pitr.dry_run(ctx, params, self.Outputs, ctx.latest(DbBackup.Outputs))
        from deploypipe.db.backup import load_backup
        from deploypipe.db.dryrun import dry_run

        backup_out = ctx.latest(DbBackup.Outputs)
        if backup_out is None or not backup_out.verified:
            raise StageFailed("no verified backup in this run to make a staging copy from",
                              where=ctx.where, hint="put a db.backup stage (verify: true) before db.dry_run")
        if params.staging_url:
            ctx.resources.redactor.add(params.staging_url)
        log_path = ctx.run_dir / f"{ctx.stage_id}.dry_run.log"
        copy = ctx.resources.take(_COPY.format(params.database))
        if copy is not None and copy.backup.id != backup_out.backup_id:
            copy.close()
            copy = None
        try:
            with live_release_for(ctx, params) as live:
                result = dry_run(backup=load_backup(Path(backup_out.path).with_suffix(".json")), copy=copy,
                                 production_url=ctx.resources.database_url(params.database), command=params.command,
                                 cwd=ctx.resources.path(params.cwd), env={**ctx.resources.env, **params.env},
                                 log_path=log_path,
                                 staging_url=params.staging_url or None, lock_timeout_s=params.lock_timeout_s,
                                 statement_timeout_s=params.statement_timeout_s, timeout_s=ctx.timeout_s,
                                 redact=ctx.resources.redactor.text, restore_jobs=params.restore_jobs,
                                 expand=dry_run_expand(ctx, params.database), **live.compat_args(params))
        except StageFailed as exc:
            ctx.emit("dry_run_finished", ok=False, error=exc.message)
            failed = self.Outputs.model_validate(exc.outputs, from_attributes=True) if exc.outputs else None
            raise StageFailed(exc.message, where=ctx.where, hint=exc.hint, outputs=failed) from None
        finally:
            if copy is not None:
                copy.close()
        run = result.run
        result.warnings[:0] = live.warnings
        for warning in result.warnings:
            ctx.emit("staging_differs", warning=warning)
        outputs = self.Outputs.model_validate(result, from_attributes=True)
        ctx.emit("dry_run_finished", ok=True, duration_s=result.duration_s, revision_after=run.revision_after)
        changes = ", ".join(f"{k}: {len(v)}" for k, v in run.schema_changes.items()) or "no schema change"
        return StageResult(outputs=outputs, warnings=tuple(result.warnings),
                           summary=f"{run.revision_before or 'an empty schema'} -> {run.revision_after} in "
                                   f"{result.duration_s:.1f}s ({changes})"
                                   + compat_summary(result.compat))

