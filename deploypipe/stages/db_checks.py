"""Read-only database checks before anything runs: ``db.migration_status`` and ``db.lint``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, ClassVar, Literal

from pydantic import Field

from deploypipe.core.findings import Finding, apply_ignores, summarize
from deploypipe.db.phases import MigrationPhase, order_problem
from deploypipe.errors import StageErrored, StageFailed
from deploypipe.stages.base import Compensation, StageResult
from deploypipe.stages.base import Outputs as BaseOutputs
from deploypipe.stages.base import Params as BaseParams
from deploypipe.stages.context import StageContext

__all__ = ["DbLint", "DbMigrationStatus", "IgnoreRule", "Resolved"]


class IgnoreRule(BaseParams):
    rule: str = Field(..., description="Rule id to ignore ('*' for all).")
    migration: str = Field(..., description="Migration name or glob it applies to.")
    reason: str = Field(..., min_length=3, description="Why it is safe (shown in the report).")


def _fail_on_findings(ctx: StageContext, findings: list[Finding], what: str) -> None:
    errors = [f for f in findings if f.severity == "error"]
    if errors:
        raise StageFailed(f"{what}: {summarize(findings)}: " + " | ".join(f.render() for f in errors),
                          where=ctx.where)


class _Tool(BaseParams):
    database: str = Field(..., description="Database target key.")
    tool: Literal["alembic", "prisma", "sql"] = Field("alembic", description="Migration tool.")
    alembic_ini: str = Field("alembic.ini", description="alembic.ini (Alembic).")
    prisma_dir: str = Field("prisma/migrations", description="Prisma migrations directory (Prisma).")
    sql_dir: str = Field("migrations", description="Directory of .sql files (sql).")


class Resolved(BaseOutputs):
    """A failed Prisma migration marked applied after each object it creates was found."""

    migration: str
    verified_objects: list[str]


class DbMigrationStatus:
    type: ClassVar[str] = "db.migration_status"
    description: ClassVar[str] = ("Read-only migration state checks (Alembic heads/unknown revisions; Prisma failed, "
                                  "rolled-back, edited, missing and pending migrations; SQL files against "
                                  "deploypipe's ledger: edited, missing, out-of-order and pending), with safe "
                                  "remedies.")
    touches_production: ClassVar[bool] = False

    class Params(_Tool):
        resolve: bool = Field(False, description="Prisma: mark a failed-but-applied migration applied, only after "
                                                 "verifying every object it creates exists.")

    class Outputs(BaseOutputs):
        tool: str
        current: list[str] = Field(default_factory=list, description="Alembic: the database's revisions.")
        heads: list[str] = Field(default_factory=list, description="Alembic: the repository's heads.")
        applied: list[str] = Field(default_factory=list, description="Prisma, sql: applied migrations.")
        failed: list[str] = Field(default_factory=list, description="Prisma: migrations recorded as failed.")
        pending: list[str] = Field(default_factory=list)
        pending_count: int = 0
        findings: list[Finding] = Field(default_factory=list)
        resolved: list[Resolved] = Field(default_factory=list, description="Failed migrations marked applied.")

    def plan(self, params: DbMigrationStatus.Params) -> str:
        resolve = " (resolve verified)" if params.resolve else ""
        return f"check {params.tool} migration state of {params.database}{resolve}"

    def run(self, ctx: StageContext, params: DbMigrationStatus.Params) -> StageResult[DbMigrationStatus.Outputs]:
        from deploypipe.db import prisma
        from deploypipe.db.alembic_repo import AlembicRepo
        from deploypipe.db.pg import connect
        from deploypipe.db.sql_ledger import sql_status
        from deploypipe.db.status import alembic_status, prisma_status

        resolved: list[Resolved] = []
        with connect(ctx.resources.database_url(params.database)) as conn:
            if params.tool == "alembic":
                findings, state = alembic_status(conn, AlembicRepo(ctx.resources.path(params.alembic_ini)))
            elif params.tool == "prisma":
                directory = ctx.resources.path(params.prisma_dir)
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
                findings, state = sql_status(conn, ctx.resources.path(params.sql_dir))
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
        with connect(ctx.resources.database_url(params.database)) as conn:
            for name in names:
                conn.execute("update _prisma_migrations set finished_at = null, applied_steps_count = 0 "
                             "where migration_name = %s", (name,))
            conn.commit()
        return Compensation(action="unresolved", verified=True, summary=f"marked {', '.join(names)} failed again",
                            details={"migrations": names})


def _alembic_pending_sources(ctx: StageContext, params: Any, conn: Any) -> list[tuple[str, str | None, Path | None]]:
    """(migration, its offline SQL, its script) for each pending Alembic revision."""
    from deploypipe.db.alembic_repo import AlembicRepo
    from deploypipe.db.phases import split_alembic_sql

    repo = AlembicRepo(ctx.resources.path(params.alembic_ini))
    current = AlembicRepo.db_revisions(conn)
    pending = repo.pending(current) if all(repo.knows(r) for r in current) else []
    if not pending:
        return []
    try:
        sql = repo.offline_sql(current, {"DATABASE_URL": ctx.resources.database_url(params.database)})
    except StageErrored as exc:  # e.g. a migration whose upgrade() cannot run offline: the AST rules still run
        ctx.emit("offline_sql_unavailable", error=exc.message)
        sql = ""
    chunks = dict(split_alembic_sql(sql))
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

    class Outputs(BaseOutputs):
        migrations: list[str] = Field(default_factory=list, description="The pending migrations linted.")
        findings: list[Finding] = Field(default_factory=list)
        phases: dict[str, str] = Field(default_factory=dict, description=(
            "Each pending migration's phase (deploypipe.db.phases): 'expand', or 'contract: ' and what the live "
            "release may not survive; absent where its SQL could not be read."))

    def plan(self, params: DbLint.Params) -> str:
        squawk = " with squawk" if params.squawk else ""
        return f"lint pending {params.tool} migrations against {params.database}'s server{squawk}"

    def plan_details(self, params: DbLint.Params, resolve: Callable[[str], Path]) -> list[str]:
        """Each migration of the chain with its phase, read offline (which are pending is known only at run time)."""
        from deploypipe.db.chain import chain_phases

        where = {"alembic": params.alembic_ini, "prisma": params.prisma_dir, "sql": params.sql_dir}[params.tool]
        return [f"migration {name}: {phase}" for name, phase in chain_phases(params.tool, resolve(where))]

    def run(self, ctx: StageContext, params: DbLint.Params) -> StageResult[DbLint.Outputs]:
        from deploypipe.db import lint, prisma
        from deploypipe.db.pg import connect

        sources: list[tuple[str, str | None, Path | None]] = []
        with connect(ctx.resources.database_url(params.database)) as conn:
            available: dict[str, set[str]] = {}
            for name, version in conn.execute("select name, version from pg_available_extension_versions"):
                available.setdefault(name, set()).add(version)
            if params.tool == "alembic":
                sources = _alembic_pending_sources(ctx, params, conn)
            elif params.tool == "prisma":
                applied = {r.migration_name for r in prisma.db_rows(conn) if r.finished_at is not None}
                sources = [(name, path.read_text(encoding="utf-8"), None)
                           for name, path in prisma.disk_migrations(ctx.resources.path(params.prisma_dir)).items()
                           if name not in applied]
            else:
                from deploypipe.db.sql_ledger import disk_files, ledger_rows

                applied_files = ledger_rows(conn)
                sources = [(name, path.read_text(encoding="utf-8"), None)
                           for name, path in disk_files(ctx.resources.path(params.sql_dir)).items()
                           if name not in applied_files]
        findings: list[Finding] = []
        excludes = lint.DEFAULT_SQUAWK_EXCLUDES if params.squawk_excludes is None else tuple(params.squawk_excludes)
        if params.tool == "alembic" and params.squawk_excludes is None:
            excludes += ("transaction-nesting",)  # Alembic's offline SQL wraps the range in BEGIN/COMMIT
        phases: dict[str, str] = {}
        chain: list[MigrationPhase] = []
        for name, sql_text, script in sources:
            if script is not None:
                findings += lint.lint_python(script, name)
            if sql_text:
                findings += lint.lint_sql(sql_text, name, available)
                if params.squawk:
                    findings += lint.squawk(sql_text, name, excludes)
                source = script.read_text(encoding="utf-8") if script is not None else sql_text
                classified, problem = _phase_of(name, sql_text, source)
                if classified is not None:
                    phases[name] = classified.summary()
                    chain.append(classified)
                findings += [problem] if problem is not None else []
        order = order_problem(chain) if _runs_in_phases(ctx, params.database) else None
        if order is not None:
            findings.append(Finding("phase-order", "error", order, "expand migrations run before the deploy, "
                                    "contract ones after the new release is verified", subject="migrations"))
        findings = apply_ignores(findings, params.ignore)
        for finding in findings:
            ctx.emit("lint_finding", **finding.as_dict())
        for name, phase in phases.items():
            ctx.emit("migration_phase", migration=name, phase=phase.split(":")[0], detail=phase)
        _fail_on_findings(ctx, findings, f"migration lint of {len(sources)} pending migration(s)")
        contract = [name for name, phase in phases.items() if phase.startswith("contract")]
        return StageResult(outputs=self.Outputs(migrations=[s[0] for s in sources], findings=findings, phases=phases),
                           warnings=tuple(f.render() for f in findings if f.severity == "warning"),
                           summary=f"{len(sources)} pending migration(s): {summarize(findings)}"
                                   + (f"; contract: {', '.join(contract)}" if contract else ""))


def _runs_in_phases(ctx: StageContext, database: str) -> bool:
    """Whether a later ``db.migrate`` of ``database`` runs phases: only then can the order of expand and contract
    migrations stop a release (with ``phase: all`` every pending migration runs before the deploy anyway)."""
    return any(getattr(p, "phase", None) == "expand" and getattr(p, "database", None) == database
               for p in ctx.later.values())


def _phase_of(name: str, sql_text: str, source: str) -> tuple[MigrationPhase | None, Finding | None]:
    """A migration's phase, or the finding that says why it has none (an override without a reason)."""
    from pglast.parser import ParseError

    from deploypipe.db.phases import OverrideError, classify

    try:
        return classify(name, sql_text, source=source), None
    except OverrideError as exc:
        return None, Finding("phase-override-without-reason", "error", str(exc),
                             "say why the live release keeps working on the migrated schema",
                             subject="migration " + name)
    except ParseError:
        return None, None  # lint_sql already reports the syntax error


