"""5xx served while releasing schema changes on the local default, and writes kept across a rollback (issue 20).

Starts the local default in a temporary copy of this repository with steady clients of its own (4 x 5 req/s: GET
/notes and POST /notes on the sample app's stable URL, the local traffic generator off), and runs the pipeline
(pipelines/local.yaml: expand before the deploy, contract after verification, the dry run's request-based
compatibility check) for each scenario, from the good release:

  * drop-column      notes.author dropped with the code that stops reading it (replay drop-column)
  * rename-column    notes.author renamed in one step, marked expand (replay rename-column): must block
  * not-null-default an added NOT NULL column with a default
  * slow-after-expand an expand migration (a nullable column), then a release whose GET /notes takes 1.5 s: it fails
                     traffic analysis and is rolled back; on_rollback auto leaves the expanded schema

Prints per scenario: exit code, requests sent, 5xx (and no answers) served, and for the rollback the rows written
during the release (POST /notes answered 201) against the rows kept, with restores and downgrades counted.

Run: python bench/bench_migrations.py
"""

from __future__ import annotations

import io
import os
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deploypipe.commands.invocation import Invocation, load  # noqa: E402
from deploypipe.commands.local import maybe_local  # noqa: E402
from deploypipe.commands.run import run_pipeline  # noqa: E402
from deploypipe.local.repo import LocalRepo  # noqa: E402
from deploypipe.local.traffic import TrafficGenerator  # noqa: E402
from deploypipe.render.client import RenderClient  # noqa: E402
from deploypipe.replays.changes import APP, BAD_CHANGES, MIGRATION_HEADER, MIGRATIONS  # noqa: E402
from deploypipe.spec.model import TrafficSpec  # noqa: E402

_MIGRATION = MIGRATION_HEADER + """

def upgrade() -> None:
    {up}


def downgrade() -> None:
    {down}
"""
_RESET = "update alembic_version set version_num = '0002' where version_num = '0003'"
SCENARIOS: dict[str, dict[str, Any]] = {
    "drop-column": BAD_CHANGES["drop-column"],
    "rename-column": BAD_CHANGES["rename-column"],
    "not-null-default": {
        "files": {f"{MIGRATIONS}/0003_pinned.py": _MIGRATION.format(
            title="notes can be pinned", up='op.add_column("notes", sa.Column("pinned", sa.Boolean, nullable=False, '
                                            'server_default=sa.false()))', down='op.drop_column("notes", "pinned")')},
        "message": "Notes can be pinned", "cleanup_sql": f"alter table notes drop column if exists pinned; {_RESET}"},
    "slow-after-expand": {
        "files": {f"{MIGRATIONS}/0003_tag.py": _MIGRATION.format(
            title="notes get an optional tag", up='op.add_column("notes", sa.Column("tag", sa.Text, nullable=True))',
            down='op.drop_column("notes", "tag")')},
        "transform": {f"{APP}/app.py": lambda source: source.replace(
            "def _list_notes() -> list[dict]:\n", "def _list_notes() -> list[dict]:\n    import time\n\n"
            "    time.sleep(1.5)  # every listing waits on a lock the new tag code takes\n")},
        "message": "Tags (and a slow listing)",
        "cleanup_sql": f"alter table notes drop column if exists tag; {_RESET}"},
}


def invocation(project: Path) -> Invocation:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RENDER_", "DEPLOYPIPE_", "DATABASE_URL"))}
    env.update({"CI": "true", "DEPLOYPIPE_LOCAL_TRAFFIC": "off", "DEPLOYPIPE_OBSERVE_S": "2",
                "DEPLOYPIPE_TRAFFIC_WINDOW_S": "20"})
    return Invocation(pipeline="pipelines/local.yaml", project_dir=project, env=env, stdout=io.StringIO(),
                      stderr=io.StringIO(), interactive=False, json_output=True)


def notes(inv: Invocation) -> int:
    with psycopg.connect(inv.env["DATABASE_URL"]) as conn:
        return int(conn.execute("select count(*) from notes").fetchone()[0])  # type: ignore[index]


def scenario(inv: Invocation, name: str, change: dict[str, Any]) -> dict[str, Any]:
    repo = LocalRepo(Path(inv.env["DEPLOYPIPE_LOCAL_REPO"]))
    good = repo.head()
    with RenderClient.from_env(dict(inv.env)) as client:
        url = client.find_service("sampleapp").url or ""
    spec = TrafficSpec.model_validate({"service": "sampleapp", "rate_per_s": 5, "requests": [
        {"path": "/notes", "weight": 3}, {"method": "POST", "path": "/notes", "weight": 1, "json": {"body": "b"}}]})
    writes = dict(change.get("files", {}))
    for rel, transform in change.get("transform", {}).items():
        writes[rel] = transform((repo.path / rel).read_text(encoding="utf-8"))
    before = notes(inv)
    clients = [TrafficGenerator(url, spec, seed=seed).start() for seed in range(4)]  # 4 x 5 req/s
    try:
        repo.commit_change(writes, change["message"])
        report = run_pipeline(inv, loaded=load(inv))
    finally:
        for generator in clients:
            generator.stop()
        repo.reset_to(good)
    sent: Counter[str] = sum((generator.sent for generator in clients), Counter())
    kept = notes(inv) - before
    actions = [item.action for item in report.rollback.items]
    with psycopg.connect(inv.env["DATABASE_URL"], autocommit=True) as conn:
        conn.execute(change["cleanup_sql"]) if change.get("cleanup_sql") else None
    back = run_pipeline(inv)  # the good release again, for the next scenario
    assert back.exit_code == 0, back.message
    return {"name": name, "exit": report.exit_code, "sent": sum(sent.values()),
            "5xx": sum(n for status, n in sent.items() if not status.isdigit() or status.startswith("5")),
            "written": sent.get("201", 0), "kept": kept, "restores": actions.count("restored"),
            "downgrades": actions.count("downgraded"), "message": report.message[:160],
            "rollback": [f"{item.stage}: {item.summary}" for item in report.rollback.items if item.stage == "migrate"]}


def main() -> None:
    project = Path(tempfile.mkdtemp(prefix="deploypipe-bench-migrations-"))
    for name in ("render.yaml", "examples", "pipelines"):
        source = ROOT / name
        (shutil.copytree(source, project / name, ignore=shutil.ignore_patterns("__pycache__"))
         if source.is_dir() else shutil.copy2(source, project / name))
    inv = invocation(project)
    rows = []
    try:
        with maybe_local(inv):
            first = run_pipeline(inv)
            assert first.exit_code == 0, first.message
            rows = [scenario(inv, name, change) for name, change in SCENARIOS.items()]
    finally:
        shutil.rmtree(project, ignore_errors=True)
    print(f"{'scenario':<18} {'exit':>4} {'sent':>5} {'5xx':>4} {'written':>7} {'kept':>5} {'restores':>8} "
          f"{'downgrades':>10}")
    for row in rows:
        print(f"{row['name']:<18} {row['exit']:>4} {row['sent']:>5} {row['5xx']:>4} {row['written']:>7} "
              f"{row['kept']:>5} {row['restores']:>8} {row['downgrades']:>10}")
    for row in rows:
        print(f"  {row['name']}: {row['message']}")
        for line in row["rollback"]:
            print(f"    rollback {line}")


if __name__ == "__main__":
    main()
