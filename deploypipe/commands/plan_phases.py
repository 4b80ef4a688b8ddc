"""``plan``'s phase-order check: a release in two phases whose pending migrations put a contract one before an
expand one is refused at plan (exit 2), without connecting to the database.

It applies to each ``db.migrate`` with ``phase: expand``, over the chain of its database's ``db.lint`` (read
offline, deploypipe.db.chain). Which part is pending follows production's revision, taken from
``--from-revision`` or else from the run history (``.deploypipe/runs/*/report.json``): the newest run that read or
migrated the database decides, from its stages in order, then its rollback:

- ``db.migration_status``: ``current`` (Alembic; empty: nothing applied) or ``applied`` (Prisma, SQL files' ledger),
  read at its start;
- ``db.migrate``: ``revision_after``, read after its command (also when it failed);
- that ``db.migrate``'s rollback item: the ``revision_now`` it read (downgraded, restored); ``nothing_to_do`` and
  ``left_schema`` change nothing; any other undo leaves the revision unknown.

A stage is the database's when its report is of this pipeline (same name) and this pipeline's stage of that id
and type works on the database, or when it is a ``db.migrate`` whose masked URL is the database's. Where the
revision is unknown, plan warns which revisions would be refused ("if production is at X or earlier") and exits 0;
``db.lint`` still refuses at run time. SQL files' revision is the last file in deploypipe's ledger.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from deploypipe.core.redact import mask_url
from deploypipe.db.chain import ChainMigration, chain_migrations
from deploypipe.db.pending import OrderProblem, applied_through, order_refusal, pending_part, refused_through
from deploypipe.engine.journal import list_runs, read_report
from deploypipe.engine.loader import LoadedPipeline
from deploypipe.errors import SpecError, UsageError
from deploypipe.stages.report import Report, StageReport

__all__ = ["Seen", "from_revisions", "phase_order", "seen_in_history"]

#: ``--from-revision`` value for a database with no migration applied.
BASE = "base"


@dataclass(frozen=True)
class Seen:
    """Where production was last seen and by what (``source``): its ``revision`` (None: no migration applied), or
    Prisma's ``applied`` migrations; ``unknown`` says why neither is known."""

    source: str
    revision: str | None = None
    applied: frozenset[str] | None = None
    unknown: str = ""

    def applied_in(self, chain: Sequence[ChainMigration]) -> set[str] | None:
        """The chain's applied migrations, None when unknown (or the chain has no such revision)."""
        if self.unknown:
            return None
        return set(self.applied) if self.applied is not None else applied_through(chain, self.revision)

    def line(self) -> str:
        """``at 0002 (run ..., stage status: current)``, ``with no migration applied (...)``."""
        count = len(self.applied) if self.applied is not None else (1 if self.revision else 0)
        where = f"at {self.revision}" if self.applied is None and self.revision else (
            f"with {count} migration(s) applied" if count else "with no migration applied")
        return f"{where} ({self.source})"


def from_revisions(text: str | None, databases: Sequence[str]) -> dict[str, Seen]:
    """``--from-revision``: ``REV`` (every database the check covers) or ``DB=REV[,DB=REV]``; ``base``: nothing
    applied. UsageError for a database the pipeline does not name."""
    if not text:
        return {}
    if not databases:
        raise UsageError(f"--from-revision {text}: no database of this pipeline is migrated in two phases (a "
                         "db.migrate with phase: expand after a db.lint)", where="plan",
                         hint="leave --from-revision out for this pipeline")
    given: dict[str, Seen] = {}
    for part in text.split(","):
        key, _, revision = part.strip().rpartition("=")
        if key and key not in databases:
            raise UsageError(f"--from-revision {part.strip()}: no database target {key!r} is migrated in two "
                             f"phases here", where="plan", hint=f"use one of: {', '.join(databases) or '(none)'}")
        seen = Seen("--from-revision", revision=None if revision == BASE else revision)
        given.update({key: seen} if key else dict.fromkeys(databases, seen))
    return given


def seen_in_history(state_dir: Path, loaded: LoadedPipeline, database: str) -> Seen | None:
    """What the newest run that read or migrated ``database`` last knew of it; None when no run did."""
    masked = mask_url(loaded.spec.targets.databases[database].url)
    for run_dir in list_runs(state_dir, sys.maxsize):
        report = read_report(run_dir)
        seen = _last_seen(report, loaded, database, masked) if report is not None else None
        if seen is not None:
            return seen
    return None


def _last_seen(report: Report, loaded: LoadedPipeline, database: str, masked: str) -> Seen | None:
    types = {stage.id: stage.type for stage in loaded.spec.stages}

    def ours(stage: StageReport) -> bool:
        if stage.type == "db.migrate" and stage.outputs.get("database") == masked:
            return True
        params = loaded.params.get(stage.id)
        return (report.pipeline == loaded.spec.name and types.get(stage.id) == stage.type
                and getattr(params, "database", None) == database)

    seen: Seen | None = None
    stages = {stage.id: stage for stage in report.stages if stage.outputs and ours(stage)}
    for stage in stages.values():
        where = f"run {report.run_id}, stage {stage.id}"
        out = stage.outputs
        if stage.type == "db.migrate":
            seen = Seen(f"{where}: revision_after", revision=out.get("revision_after"))
        elif stage.type == "db.migration_status" and out.get("tool") in ("prisma", "sql"):
            seen = Seen(f"{where}: applied", applied=frozenset(out.get("applied", ())))
        elif stage.type == "db.migration_status":
            current = list(out.get("current", ()))
            seen = Seen(f"{where}: current", revision=current[0] if current else None,
                        unknown="" if len(current) <= 1 else f"several heads: {', '.join(current)}")
    for item in report.rollback.items:
        if item.stage not in stages or item.type != "db.migrate":
            continue
        where = f"run {report.run_id}, rollback of stage {item.stage}"
        if "revision_now" in item.details:
            seen = Seen(f"{where}: revision_now", revision=item.details["revision_now"])
        elif item.action not in ("nothing_to_do", "left_schema"):
            seen = Seen(where, unknown=f"{item.action}, revision not read")
    return seen


@dataclass(frozen=True)
class _Check:
    stage_id: str
    database: str
    tool: Literal["alembic", "prisma", "sql"]
    path: Path


def _checks(loaded: LoadedPipeline, project_dir: Path) -> list[_Check]:
    """One per ``db.migrate`` with ``phase: expand`` whose database has a ``db.lint`` before it."""
    checks, lints = [], {}
    for stage in loaded.spec.stages:
        params = loaded.params[stage.id]
        if stage.type == "db.lint":
            where = {"alembic": params.alembic_ini, "prisma": params.prisma_dir, "sql": params.sql_dir}[params.tool]
            lints[params.database] = (params.tool, project_dir / where)
        elif stage.type == "db.migrate" and params.phase == "expand" and params.database in lints:
            checks.append(_Check(stage.id, params.database, *lints[params.database]))
    return checks


def phase_order(loaded: LoadedPipeline, state_dir: Path, project_dir: Path, from_revision: str | None = None
                ) -> dict[str, dict[str, Any]]:
    """Per ``db.migrate`` (phase: expand) stage id, what plan knows of its pending migrations' order: ``verdict``
    ok or warning, ``line`` to show, and where production's revision came from. SpecError (exit 2) when the
    pending part has a contract migration before an expand one."""
    checks = _checks(loaded, project_dir)
    given = from_revisions(from_revision, [c.database for c in checks])
    found: dict[str, dict[str, Any]] = {}
    for check in checks:
        chain = chain_migrations(check.tool, check.path)
        seen = given.get(check.database) or seen_in_history(state_dir, loaded, check.database)
        applied = seen.applied_in(chain) if seen is not None else None
        if applied is not None and seen is not None:
            pending = pending_part(chain, applied)
            problem = order_refusal(pending)
            if problem is not None:
                raise _refusal(loaded, project_dir, check, seen, problem)
            found[check.stage_id] = {
                "verdict": "ok", "database": check.database, "production": seen.line(),
                "pending": [m.name for m in pending],
                "line": f"phase order: {check.database} {seen.line()}; pending: "
                        + (", ".join(f"{m.name} {m.phase.phase if m.phase else 'unknown'}" for m in pending)
                           or "none") + "; no contract migration before an expand one"}
            continue
        found[check.stage_id] = _unknown(check, chain, seen)
    return found


def _unknown(check: _Check, chain: Sequence[ChainMigration], seen: Seen | None) -> dict[str, Any]:
    why = (f"no run in .deploypipe/runs read or migrated {check.database}" if seen is None
           else f"{seen.source}: {seen.unknown}" if seen.unknown
           else f"{seen.source} says {seen.revision}, a revision this chain does not have")
    unread = next((m for m in chain if m.file is None), None)
    if unread is not None:
        return {"verdict": "warning", "database": check.database, "production": None, "pending": None,
                "line": f"warning: phase order: not checked, the chain cannot be read ({unread.unknown}); db.lint "
                        "checks it at run time"}
    refused = refused_through(chain)
    if refused is None:
        return {"verdict": "ok", "database": check.database, "production": None, "pending": None,
                "line": f"phase order: {check.database}'s revision is not known ({why}), and at any revision no "
                        "contract migration comes before an expand one"}
    revision, problem = refused
    at = f"is at {revision} or earlier" if revision else "has no migration applied"
    return {"verdict": "warning", "database": check.database, "production": None, "pending": None,
            "line": f"warning: phase order: {check.database}'s revision is not known ({why}); if production {at}, "
                    f"db.lint refuses this release at run time (exit 1): {problem.message}; plan --from-revision "
                    "REV decides it now"}


def _refusal(loaded: LoadedPipeline, project_dir: Path, check: _Check, seen: Seen, problem: OrderProblem
             ) -> SpecError:
    def named(migration: ChainMigration, why: str = "") -> str:
        file = migration.file
        if file is not None and file.is_relative_to(project_dir.resolve()):
            file = file.relative_to(project_dir.resolve())
        return f"{migration.name} ({file}{': ' + why if why else ''})" if file else migration.name

    contract, expand = problem.contract, problem.expand
    return SpecError(
        f"production {check.database} {seen.line()}: its pending migrations cannot run in two phases: "
        f"contract migration {named(contract, contract.summary().removeprefix('contract: '))} comes before expand "
        f"migration {named(expand)}",
        where=f"{loaded.path}: stage {check.stage_id} (db.migrate, phase: expand)",
        hint=f"split the release: release {expand.name} (and every expand migration) first, then {contract.name} in "
             f"a later release; or move {contract.name} after {expand.name} in the chain")
