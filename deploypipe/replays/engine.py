"""Run an incident replay: make the seed's bad change against the local default, run the real pipeline, and show
that production (its data and its serving release) is unharmed.

The caller hands in how to run a pipeline (``run``), so replays stay below the
commands that offer them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import httpx
import psycopg

from deploypipe.db.pg import row_counts
from deploypipe.engine.loader import LoadedPipeline
from deploypipe.errors import UsageError
from deploypipe.local.repo import LocalRepo
from deploypipe.render.client import RenderClient
from deploypipe.replays.catalogue import REPLAYS, Replay
from deploypipe.replays.changes import APP, BAD_CHANGES, PRISMA_MIGRATION
from deploypipe.stages.db_checks import IgnoreRule
from deploypipe.stages.report import Report

__all__ = ["ReplayResult", "production_state", "run_replay", "served_service"]


@dataclass
class ReplayResult:
    replay: Replay
    runs: list[Report] = field(default_factory=list)
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    resolved: bool | None = None

    @property
    def exit_code(self) -> int:
        return self.runs[0].exit_code if self.runs else 2

    @property
    def serving(self) -> str | None:
        """The commit that must serve afterwards: the new release's when it was deployed (exit 0), else the old."""
        if self.exit_code == 0 and self.runs and self.runs[0].deploys:
            return self.runs[0].deploys[0].commit
        return self.before.get("commit")

    @property
    def unharmed(self) -> bool:
        """The right release serves (see ``serving``) and no data was lost (with traffic running, tables may only
        have grown)."""
        if not self.replay.traffic:
            return self.before == self.after
        rows_before, rows_after = self.before.get("rows", {}), self.after.get("rows", {})
        return (self.serving == self.after.get("commit") and set(rows_before) == set(rows_after)
                and all(rows_after[table] >= count for table, count in rows_before.items()))

    def summary(self) -> str:
        first = self.runs[0]
        stopped = next(iter(first.failed_stages()), None)
        error = (stopped.error.message if stopped and stopped.error else "")[:300]
        what = (f"stage {stopped.id} ({stopped.type}) stopped it: {error}"
                if stopped else first.message)
        lines = [
            f"replay {self.replay.name} — {self.replay.title}",
            f"  seed ({self.replay.seed}): {self.replay.before}",
            f"  deploypipe: exit {first.exit_code} ({first.outcome.value}) in {self.seconds:.1f}s; {what}",
        ]
        if first.rollback.performed:
            lines.append("  rollback: " + "; ".join(i.summary for i in first.rollback.items))
        if self.resolved is not None:
            remedy = "marked applied after verifying its objects" if self.resolved else "NOT resolved"
            lines.append(f"  remedy: the failed row was {remedy}")
        for extra in self.runs[1:]:
            lines.append(f"  then: {extra.pipeline} -> exit {extra.exit_code}: {extra.message[:200]}")
        lines.append(f"  production before: commit {str(self.before.get('commit'))[:12]}, "
                     f"rows {self.before.get('rows')}")
        lines.append(f"  production after:  commit {str(self.after.get('commit'))[:12]}, rows {self.after.get('rows')}"
                     f" — {'unharmed' if self.unharmed else 'CHANGED'}")
        lost = "" if self.replay.seed_minutes is None else f"the seed's team lost ~{self.replay.seed_minutes:.0f} min; "
        what = {0: " from deploy to a verified release", 1: ", production untouched"}.get(
            self.exit_code, " from deploy to a verified rollback")
        lines.append(f"  time: {lost}here {self.seconds:.1f}s{what}")
        return "\n".join(lines)


def production_state(env: dict[str, str], service: str, health_path: str = "/health") -> dict[str, Any]:
    """Row counts of local production and the commit the stable URL of Render service ``service`` serves."""
    with psycopg.connect(env["DATABASE_URL"]) as conn:
        counts = {k: v for k, v in row_counts(conn).items() if not k.endswith("_prisma_migrations")}
    with RenderClient.from_env(env) as client:
        url = client.find_service(service).url
    try:
        commit = httpx.get(f"{url}{health_path}", timeout=5, trust_env=False).json().get("commit")
    except (httpx.HTTPError, ValueError):
        commit = None
    return {"commit": commit, "rows": counts}


def _sql(env: dict[str, str], statement: str | None) -> None:
    if statement:
        with psycopg.connect(env["DATABASE_URL"], autocommit=True) as conn:
            conn.execute(statement)


def _subset(loaded: LoadedPipeline, ids: list[str], updates: dict[str, dict[str, Any]], name: str) -> LoadedPipeline:
    stages = [s for s in loaded.spec.stages if s.id in ids]
    params = {s.id: loaded.params[s.id].model_copy(update=updates.get(s.id, {})) for s in stages}
    spec = loaded.spec.model_copy(update={"stages": stages, "name": name})
    return LoadedPipeline(loaded.path, spec, params, loaded.secrets, loaded.source)


def _variants(name: str, loaded: LoadedPipeline, repo: Path) -> list[LoadedPipeline]:
    """The pipeline(s) a replay runs: the local pipeline itself, plus follow-ups that show the remedy."""
    if name == "failed-migration-state":
        prisma = {"tool": "prisma", "prisma_dir": str(repo / APP / "prisma" / "migrations")}
        return [_subset(loaded, ["preflight", "migration-status"], {"migration-status": prisma}, loaded.spec.name),
                _subset(loaded, ["migration-status"], {"migration-status": {**prisma, "resolve": True}},
                        loaded.spec.name + "-resolve-verified")]
    if name == "transaction-cascade":
        ignore = [IgnoreRule(rule="alembic-op-monkeypatch", migration="*",
                             reason="replay: show the dry run catches it too")]
        return [loaded, _subset(loaded, [s.id for s in loaded.spec.stages], {"migration-lint": {"ignore": ignore}},
                                loaded.spec.name + "-without-lint")]
    return [loaded]


def served_service(loaded: LoadedPipeline) -> tuple[str, str]:
    """(Render service name, health path) of the pipeline's one service target."""
    targets = list(loaded.spec.targets.services.values())
    if len(targets) != 1 or not targets[0].name:
        raise UsageError(f"pipeline {loaded.spec.name}: a replay needs exactly one service target with a name",
                         where=str(loaded.path))
    return targets[0].name, targets[0].health_path


def run_replay(name: str, *, env: dict[str, str], load: Callable[[], LoadedPipeline],
               run: Callable[[LoadedPipeline], Report], on_run: Callable[[Report], None] | None = None) -> ReplayResult:
    """Run replay ``name`` inside an already-started local default whose variables are in ``env``.

    ``load()`` loads the pipeline after the bad change is committed; ``run(pipeline)`` runs it and returns its report.
    """
    if name not in REPLAYS:
        raise UsageError(f"no replay '{name}'", hint=f"one of: {', '.join(REPLAYS)} (see `invoke replay list`)")
    replay, change = REPLAYS[name], BAD_CHANGES[name]
    repo = LocalRepo(Path(env["DEPLOYPIPE_LOCAL_REPO"]))
    good = repo.head()
    result = ReplayResult(replay)
    try:
        _sql(env, change.get("production_sql"))
        service = served_service(load())
        result.before = production_state(env, *service)
        writes = dict(change.get("files", {}))
        for rel, transform in change.get("transform", {}).items():
            source = (repo.path / rel).read_text(encoding="utf-8")
            writes[rel] = transform(source)
            if writes[rel] == source:
                raise UsageError(f"replay {name}: its change no longer applies to {rel}",
                                 hint=f"update deploypipe/replays/changes.py to the current {rel}")
        repo.commit_change(writes, change["message"])
        loaded = load()
        started = time.monotonic()
        for variant in _variants(name, loaded, repo.path):
            report = run(variant)
            result.runs.append(report)
            if on_run:
                on_run(report)
            if not result.seconds:
                result.seconds = time.monotonic() - started
        result.after = production_state(env, *service)
        if name == "failed-migration-state":
            result.resolved = _prisma_finished(env)
    finally:
        repo.reset_to(good)
        _sql(env, change.get("cleanup_sql"))
    return result


def _prisma_finished(env: dict[str, str]) -> bool:
    with psycopg.connect(env["DATABASE_URL"]) as conn:
        row = conn.execute("select finished_at is not null from _prisma_migrations where migration_name = %s",
                           (PRISMA_MIGRATION,)).fetchone()
    return bool(row and row[0])


