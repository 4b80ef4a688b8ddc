"""The PITR side of ``db.backup``, ``db.dry_run`` and ``db.migrate``: Render point-in-time recovery for big databases.

A database target in ``mode: pitr`` (or ``auto`` above ``pitr_above_gb``) is
never dumped: ``db.backup`` records a *restore point* (Render says recovery is
AVAILABLE; the exact time is journaled before any migration), ``db.dry_run``
migrates a *PITR clone* at that restore point (a new Render database, deleted
afterwards whatever happens: success, failure, KeyboardInterrupt/SIGTERM), and
``db.migrate``'s ``on_rollback: restore`` brings production back to the
restore point through another clone, only when confirmed. ``stages/db.py``
calls in here from a few lines at the top of each stage; the library is
:mod:`deploypipe.db.pitr`.

    takes_pitr(ctx, database, backup=None) -> bool
    plan_line(target) -> str                                           (pure: ``invoke plan``)
    backup(ctx, params, outputs_type) -> StageResult                   (db.backup)
    dry_run(ctx, params, outputs_type, backup) -> StageResult          (db.dry_run)
    restore(ctx, params, outputs, backup) -> Compensation              (db.migrate, on_rollback: restore)
"""

from __future__ import annotations

import time
from typing import Any, Callable, TypeVar

from deploypipe.errors import StageFailed
from deploypipe.spec.targets import DatabaseTarget
from deploypipe.stages.base import Compensation, StageResult
from deploypipe.stages.base import Outputs as BaseOutputs
from deploypipe.stages.context import StageContext
from deploypipe.stages.render_export import RenderExport

__all__ = ["backup", "dry_run", "plan_line", "restore", "takes_pitr"]

OutputsT = TypeVar("OutputsT", bound=BaseOutputs)

RESTORE_POINT = "restore_point"


def _wall(ctx: StageContext) -> Callable[[], float]:
    """The run's wall clock in epoch seconds (restore times are moments, not durations)."""
    return lambda: ctx.now().timestamp()


def plan_line(target: DatabaseTarget) -> str:
    """Which path the database takes and why, for ``invoke plan`` (``auto``: decided when the run starts)."""
    from deploypipe.db.pitr import choose_mode

    return choose_mode(target.mode, render_postgres=target.render_postgres,
                       threshold_gb=target.pitr_above_gb).line()


def takes_pitr(ctx: StageContext, database: str, backup: Any | None = None) -> bool:
    """Whether ``database`` takes the PITR path in this run.

    ``mode: auto`` follows this run's backup (``backup``: the latest db.backup outputs) when there is one, so the dry
    run and the migration take the path the backup took; else it compares ``pg_database_size`` with the threshold
    now, and journals the choice.
    """
    target = ctx.resources.targets.databases[database]
    if target.mode != "auto":
        return target.mode == "pitr"
    if backup is not None:
        return getattr(backup, "kind", "dump") == RESTORE_POINT
    from deploypipe.db.pitr import choose_mode, database_size_bytes

    choice = choose_mode("auto", render_postgres=target.render_postgres, threshold_gb=target.pitr_above_gb,
                         size_bytes=database_size_bytes(target.url))
    ctx.emit("database_path_chosen", database=database, path=choice.path, reason=choice.line())
    return choice.path == "pitr"


def _postgres_id(ctx: StageContext, target: DatabaseTarget) -> str:
    assert target.render_postgres  # the target's validation requires it for pitr and auto
    return ctx.resources.render.find_postgres(target.render_postgres).id


# -- db.backup: a restore point ------------------------------------------------------------------------------------
def backup(ctx: StageContext, params: Any, outputs_type: type[OutputsT]) -> StageResult[OutputsT]:
    """Record a restore point of the database's Render Postgres: recovery AVAILABLE, its time journaled."""
    from deploypipe.db.pg import connect, server_version
    from deploypipe.db.pitr import database_size_bytes, record_restore_point

    started = time.monotonic()
    target = ctx.resources.targets.databases[params.database]
    client = ctx.resources.render
    postgres_id = _postgres_id(ctx, target)
    size = database_size_bytes(target.url)
    with connect(target.url) as conn:
        version = server_version(conn)
    warnings: list[str] = []
    export = RenderExport.start(ctx, params.database, warnings) if params.render_export else None
    point = record_restore_point(client, postgres_id, now=_wall(ctx))
    backup_id = f"restore-point-{postgres_id}-{point.at.strftime('%Y%m%dT%H%M%S%fZ')}"
    ctx.emit("restore_point_recorded", backup_id=backup_id, database=params.database, **point.to_dict())
    exported = export.wait(ctx, params.render_export_wait_s, warnings) if export is not None else None
    if not params.verify:
        warnings.append("verify: false has no effect in mode pitr: Render's recovery status is the verification")
    outputs = outputs_type.model_validate({
        "backup_id": backup_id, "path": "", "sha256": "", "size_bytes": size, "verified": True,
        "verified_on": f"Render point-in-time recovery of {postgres_id}: AVAILABLE",
        "duration_s": round(time.monotonic() - started, 3), "server_version": version,
        "render_export": export.postgres_id if export is not None else None,
        "render_export_id": exported.id if exported is not None else None,
        "kind": RESTORE_POINT, "restore_time": point.iso, "postgres_id": postgres_id})
    return StageResult(outputs=outputs, warnings=tuple(warnings),
                       summary=f"restore point {point.iso} of {postgres_id} ({size / 1024 ** 3:.1f} GB): Render "
                               "point-in-time recovery AVAILABLE")


# -- db.dry_run: the migration on a PITR clone ---------------------------------------------------------------------
def dry_run(ctx: StageContext, params: Any, outputs_type: type[OutputsT], backup: Any | None) -> StageResult[OutputsT]:
    """Run the migration command on a PITR clone at this run's restore point, rehearsed as on a dump's copy (the
    expand phase, then the live release sent its real GET requests, then the rest; deploypipe.stages.db_compat);
    the clone is deleted afterwards."""
    from deploypipe.db.dryrun import compare_servers, rehearsal_failure, rehearse
    from deploypipe.db.pitr import BILLING_NOTE, RestorePoint, recovery_clone
    from deploypipe.db.pitr_clone import iso
    from deploypipe.stages.db_compat import compat_summary, live_release_for
    from deploypipe.stages.db_phases import dry_run_expand

    if backup is None or getattr(backup, "kind", "dump") != RESTORE_POINT or not backup.verified:
        raise StageFailed("no restore point in this run to clone for the dry run", where=ctx.where,
                          hint="put a db.backup stage for this database before db.dry_run (in mode pitr it records "
                               "a restore point)")
    target = ctx.resources.targets.databases[params.database]
    point = RestorePoint.from_dict({"postgres_id": backup.postgres_id, "at": backup.restore_time})
    warnings = ["staging_url is not used in mode pitr: the staging copy is a PITR clone"] if params.staging_url else []
    log_path = ctx.run_dir / f"{ctx.stage_id}.dry_run.log"
    started = time.monotonic()
    with live_release_for(ctx, params) as live, recovery_clone(
            ctx.resources.render, point.postgres_id, point, f"deploypipe-{ctx.stage_id}",
            min_age_s=target.pitr_min_age_s, timeout_s=ctx.timeout_s or 3600.0, sleep=ctx.sleep,
            clock=_wall(ctx)) as clone:
        ctx.resources.redactor.add(clone.url)
        made_s = round(time.monotonic() - started, 3)
        staging = (f"PITR clone {clone.name} ({clone.postgres_id}) of {point.postgres_id} at "
                   f"{iso(clone.restore_time)}")
        ctx.emit("pitr_clone_ready", clone_id=clone.postgres_id, name=clone.name,
                 restore_time=iso(clone.restore_time), note=clone.note, billing=BILLING_NOTE, duration_s=made_s)
        warnings += live.warnings
        if clone.restore_time != point.at:
            warnings.append(clone.note)
        warnings += compare_servers(target.url, clone.url)
        for warning in warnings:
            ctx.emit("staging_differs", warning=warning)
        run, compat = rehearse(clone.url, command=params.command, cwd=ctx.resources.path(params.cwd),
                               env={**ctx.resources.env, **params.env}, log_path=log_path,
                               lock_timeout_s=params.lock_timeout_s, statement_timeout_s=params.statement_timeout_s,
                               timeout_s=ctx.timeout_s, redact=ctx.resources.redactor.text,
                               expand=dry_run_expand(ctx, params.database), **live.compat_args(params))
        outputs = outputs_type.model_validate({
            "ok": run.ok and (compat is None or compat.ok), "command": params.command, "backup_id": backup.backup_id,
            "staging": staging, "duration_s": round(time.monotonic() - started, 3), "restore_s": made_s, "run": run,
            "warnings": warnings, "compat": compat})
        error = rehearsal_failure(run, compat, staging, where=ctx.where, outputs=outputs)
        if error is not None:  # raised inside the block: the clone is deleted and this error is the one reported
            ctx.emit("dry_run_finished", ok=False, error=error.message, staging=staging)
            raise error
    ctx.emit("pitr_clone_deleted", clone_id=clone.postgres_id, name=clone.name)
    ctx.emit("dry_run_finished", ok=True, duration_s=round(time.monotonic() - started, 3),
             revision_after=run.revision_after, staging=staging)
    changes = ", ".join(f"{k}: {len(v)}" for k, v in run.schema_changes.items()) or "no schema change"
    return StageResult(outputs=outputs, warnings=tuple(warnings),
                       summary=f"{run.revision_before or 'an empty schema'} -> {run.revision_after} on a PITR clone "
                               f"at {iso(clone.restore_time)} in {time.monotonic() - started:.1f}s ({changes})"
                               + compat_summary(compat) + "; clone deleted")


# -- db.migrate's on_rollback: restore -----------------------------------------------------------------------------
def restore(ctx: StageContext, params: Any, outputs: Any, backup: Any) -> Compensation:
    """Bring production back to this run's restore point through a PITR clone, only when confirmed (a question
    answered yes, or ``restore_confirmed``); verified by row counts and the revision before the migration."""
    from deploypipe.db.pitr import RestorePoint, restore_production_from

    before = outputs.revision_before
    if not outputs.production_changed and before == outputs.revision_after:
        return Compensation(action="nothing_to_do", verified=True,
                            summary=f"the migration did not change production (revision {before})")
    target = ctx.resources.targets.databases[params.database]
    point = RestorePoint.from_dict({"postgres_id": backup.postgres_id, "at": backup.restore_time})
    confirm: Callable[[str], bool] = (lambda question: True) if params.restore_confirmed else ctx.resources.confirm
    undo = restore_production_from(ctx.resources.render, point.postgres_id, point, target.url, confirm=confirm,
                                   run_id=ctx.run_id, name=f"deploypipe-{ctx.stage_id}-restore",
                                   min_age_s=target.pitr_min_age_s, lock_wait_s=params.lock_wait_s,
                                   sleep=ctx.sleep, clock=_wall(ctx))
    verified, summary = undo.verified, undo.summary
    if undo.action == "restored" and undo.details.get("revision_now") != before:
        verified = False
        summary += f"; but the revision is {undo.details.get('revision_now')}, not {before}"
    return Compensation(action=undo.action, verified=verified, summary=summary,
                        details={"policy": "restore", "revision_before": before,
                                 "revision_after": outputs.revision_after, **undo.details})
