"""``db.migrate``'s two phases in one release, and what ``on_rollback: auto`` picks.

``phase: expand`` runs the pending migrations up to the last expand one before the first contract one before the
deploy; ``phase: contract`` runs the rest after the new release is verified, in the same run, under the same
advisory lock and after the same verified backup and dry run. The phases come from ``db.lint``'s outputs of this
run (deploypipe.db.phases). Who applies what, per ``tool``:

=========  ===========================================  ==============================================
tool       expand (``expand_command``, ``{revision}``)   all / contract (``command``)
=========  ===========================================  ==============================================
alembic    ``alembic upgrade {revision}``                the user's command (``alembic upgrade head``)
prisma     deploypipe, as ``prisma migrate deploy``       the user's command (``npx prisma migrate deploy``)
           records it (deploypipe.db.prisma_apply)
sql        deploypipe, with its ledger                    the user's command, else deploypipe with its
           (deploypipe.db.sql_ledger)                     ledger (every pending file)
=========  ===========================================  ==============================================

``on_rollback: auto``: ``leave`` when every migration the stage applied is expand and the dry run proved the live
release serves its real requests on the migrated copy; else ``downgrade`` (the values it drops are counted and
named) where a downgrade exists (Alembic, or a ``downgrade_command``). Prisma and SQL files have none: there the
schema is kept and the rollback is reported unverified (exit 4, a human decides). Never a restore.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from deploypipe.errors import StageFailed
from deploypipe.stages.context import StageContext

__all__ = ["PhaseWork", "auto_policy", "can_downgrade", "dry_run_expand", "expand_command", "phase_work",
           "pipeline_problem", "production_command"]


@dataclass(frozen=True)
class PhaseWork:
    """What one phase runs: ``command`` (None: nothing to run), the migrations it applies and those it leaves."""

    command: str | None
    migrations: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)


def production_command(ctx: StageContext, params: Any) -> str:
    """The command of phase all and contract: the user's, else (tool sql) deploypipe's own applier."""
    from deploypipe.db.apply import apply_command

    if params.command:
        return str(params.command)
    return apply_command("sql", ctx.resources.path(params.sql_dir))


def expand_command(ctx: StageContext, params: Any, revision: str) -> str:
    """The command of phase expand up to and including ``revision``: ``expand_command``, else per tool."""
    from deploypipe.db.apply import apply_command

    if params.expand_command:
        return str(params.expand_command).format(revision=revision)
    if params.tool == "alembic":
        return f"alembic upgrade {revision}"
    directory = params.prisma_dir if params.tool == "prisma" else params.sql_dir
    return apply_command(params.tool, ctx.resources.path(directory), through=revision)


def can_downgrade(params: Any) -> bool:
    """Whether a downgrade exists: Alembic's, or a ``downgrade_command`` the pipeline gives."""
    return params.tool == "alembic" or bool(params.downgrade_command)


def phase_work(ctx: StageContext, params: Any, waiting_after_expand: list[str] | None) -> PhaseWork:
    """The work of ``params.phase``; ``waiting_after_expand`` is what this run's expand phase left (None: no
    expand phase ran). StageFailed (production untouched) when the phases cannot be known."""
    from deploypipe.stages.db_checks import DbLint

    lint = ctx.latest(DbLint.Outputs)
    if params.phase == "all":
        return PhaseWork(production_command(ctx, params), list(lint.migrations) if lint else [])
    if params.phase == "contract":
        if waiting_after_expand is None:
            raise StageFailed("phase: contract runs only after a db.migrate with phase: expand in this run",
                              where=ctx.where, hint="put db.migrate (phase: expand) before render.deploy")
        return PhaseWork(production_command(ctx, params) if waiting_after_expand else None,
                         list(waiting_after_expand))
    if lint is None:
        raise StageFailed("phase: expand needs db.lint earlier in this run: it names each pending migration's phase",
                          where=ctx.where, hint="put db.lint (same database and tool) before db.migrate")
    unknown = [m for m in lint.migrations if m not in lint.phases]
    if unknown:
        raise StageFailed(f"the phase of pending migration {unknown[0]} is unknown: db.lint could not read its SQL",
                          where=ctx.where, hint="make its upgrade() run offline (alembic upgrade --sql), or run "
                                                "the release with phase: all after checking it by hand")
    expand, contract = _split(lint.migrations, lint.phases)
    if not contract and params.command:
        return PhaseWork(params.command, expand)
    if not expand:
        return PhaseWork(None, [], contract)
    return PhaseWork(expand_command(ctx, params, expand[-1]), expand, contract)


def _split(migrations: Sequence[str], phases: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """(expand migrations before the first contract one, the rest); an unknown phase counts as contract."""
    first = next((i for i, m in enumerate(migrations) if not phases.get(m, "").startswith("expand")), len(migrations))
    return list(migrations[:first]), list(migrations[first:])


def dry_run_expand(ctx: StageContext, database: str) -> tuple[str | None] | None:
    """How ``db.dry_run`` rehearses the expand phase of a later ``db.migrate`` (phase: expand) of ``database``:
    ``(expand command,)``, ``(None,)`` when only contract migrations are pending, None when there is one phase."""
    from deploypipe.stages.db_checks import DbLint

    migrate: Any = next((p for p in ctx.later.values() if getattr(p, "phase", None) == "expand"
                         and getattr(p, "database", None) == database), None)
    lint = ctx.latest(DbLint.Outputs)
    if migrate is None or lint is None:
        return None
    expand, contract = _split(lint.migrations, lint.phases)
    if not contract:
        return None
    return (expand_command(ctx, migrate, expand[-1]) if expand else None,)


def auto_policy(ctx: StageContext, phase: str, applied: list[str], compat_proven: bool
                ) -> tuple[Literal["leave", "downgrade"], str]:
    """(policy, why) for ``on_rollback: auto`` of a stage that applied ``applied`` in ``phase``."""
    from deploypipe.stages.db_checks import DbLint

    if phase == "contract":
        return "leave", "the contract phase ran after the release was verified; the verified release needs it"
    lint = ctx.latest(DbLint.Outputs)
    phases = lint.phases if lint else {}
    contract = [m for m in applied if not phases.get(m, "").startswith("expand")]
    if contract:
        return "downgrade", f"migration {contract[0]} is not known to be expand"
    if not compat_proven:
        return "downgrade", ("every applied migration is expand, but the dry run did not prove the live release "
                             "serves its requests on the migrated schema")
    return "leave", ("every applied migration is expand and the live release served its real requests on the "
                     "migrated copy")


def pipeline_problem(stages: Sequence[Any], params: Mapping[str, Any]) -> tuple[int, str, str] | None:
    """(stage index, key, message) of the first misplaced ``db.migrate`` phase in a pipeline, None when sound.

    A contract phase comes after an expand phase of the same database and after a ``render.deploy`` (or
    ``render.release``), and says
    ``on_failure: stop``: once the new release is verified, a failed contract must not roll it back. Every
    ``db.migrate`` names the commands its tool needs (:func:`_tool_problem`).
    """
    expanded: set[str] = set()
    deployed = False
    for index, stage in enumerate(stages):
        deployed = deployed or stage.type in ("render.deploy", "render.release")
        if stage.type != "db.migrate":
            continue
        stage_params = params[stage.id]
        wrong = _tool_problem(stage_params)
        if wrong is not None:
            return (index, *wrong)
        if stage_params.phase == "expand":
            expanded.add(stage_params.database)
        if stage_params.phase != "contract":
            continue
        if stage_params.database not in expanded or not deployed:
            return (index, "with.phase", f"a contract phase of database {stage_params.database} must come after "
                                         f"db.migrate with phase: expand of it and after render.deploy; expected "
                                         f"expand, deploy, verify, then contract")
        if stage.on_failure != "stop":
            return (index, "on_failure", f"a contract phase must say on_failure: stop (a failed contract leaves "
                                         f"the verified release serving; nothing is rolled back); got "
                                         f"{stage.on_failure}")
    return None


def _tool_problem(params: Any) -> tuple[str, str] | None:
    """(key, message) when a ``db.migrate`` lacks a command its tool and phase need, None when it has them."""
    if params.command is None and params.tool == "alembic":
        return ("with.command", "tool alembic needs command (e.g. alembic upgrade head); deploypipe applies "
                                "Prisma's expand phase and SQL files itself, not Alembic revisions")
    if params.command is None and params.tool == "prisma" and params.phase != "expand":
        return ("with.command", f"tool prisma with phase {params.phase} needs command (e.g. npx prisma migrate "
                                "deploy); deploypipe applies only the expand phase of Prisma migrations itself")
    if params.on_rollback == "downgrade" and not can_downgrade(params):
        return ("with.on_rollback", f"on_rollback: downgrade needs a downgrade_command for tool {params.tool} "
                                    "(its migrations have no down step); expected auto, leave or restore, or a "
                                    "downgrade_command")
    return None
