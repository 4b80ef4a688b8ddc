"""On the local default with real processes: a release in two phases (expand before the deploy, contract after
verification), and the dry run's request-based compatibility check.

A steady client of the test's own (GET and POST /notes on the sample app's stable URL, like a user's) counts what
the service answers while the release runs.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import psycopg
import pytest
from local_default import released_local

from deploypipe.commands.invocation import Invocation, load
from deploypipe.commands.plan import show_plan
from deploypipe.commands.run import run_pipeline
from deploypipe.local.repo import LocalRepo
from deploypipe.local.traffic import TrafficGenerator
from deploypipe.render.client import RenderClient
from deploypipe.replays.changes import APP, BAD_CHANGES
from deploypipe.replays.engine import run_replay
from deploypipe.spec.model import TrafficSpec

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def released():
    """A running local default (its own traffic on), the good release live; (project, invocation, first report)."""
    with released_local("deploypipe-phases-") as started:
        yield started


@pytest.fixture
def good(released):
    """The good release live again (the replays' cleanup put the schema back; a replay that released left its
    commit live): each test starts from the release every replay assumes."""
    report = run_pipeline(released[1])
    assert report.exit_code == 0, report.message
    assert "author" in columns(released[1])
    return released


def steady_client(inv: Invocation) -> TrafficGenerator:
    with RenderClient.from_env(dict(inv.env)) as client:
        url = client.find_service("sampleapp").url
    spec = TrafficSpec.model_validate({"service": "sampleapp", "rate_per_s": 20, "requests": [
        {"path": "/notes", "weight": 3}, {"method": "POST", "path": "/notes", "weight": 1, "json": {"body": "x"}}]})
    return TrafficGenerator(url, spec, seed=20)


def columns(inv: Invocation) -> list[str]:
    with psycopg.connect(inv.env["DATABASE_URL"]) as conn:
        return [r[0] for r in conn.execute("select column_name from information_schema.columns "
                                           "where table_name = 'notes' order by ordinal_position")]


def events(report) -> list[dict]:
    return [json.loads(line) for line in (Path(report.run_dir) / "events.jsonl").read_text().splitlines()]


def test_a_dropped_column_is_dropped_only_after_verification_and_no_request_fails(good):
    _, inv, _ = good
    client = steady_client(inv).start()
    try:
        result = run_replay("drop-column", env=dict(inv.env), load=lambda: load(inv),
                            run=lambda loaded: run_pipeline(inv, loaded=loaded))
    finally:
        client.stop()
    report = result.runs[0]
    assert result.exit_code == 0, result.summary()
    contract = report.stage("contract").outputs
    assert contract["run"]["schema_changes"] == {"columns_removed": ["public.notes.author text"]}, contract
    served_5xx = sum(n for status, n in client.sent.items() if status.startswith("5") or not status.isdigit())
    assert served_5xx == 0 and sum(client.sent.values()) > 50, client.sent
    assert report.stage("migrate").outputs["waiting"] == ["0003"]
    assert report.stage("migrate").outputs["production_changed"] is False  # nothing before the deploy
    assert contract["migrations"] == ["0003"] and contract["revision_after"] == "0003"
    order = [(e["event"], e.get("stage")) for e in events(report)]
    assert order.index(("stage_succeeded", "traffic")) < order.index(("migration_finished", "contract"))
    compat = report.stage("dry-run").outputs["compat"]
    assert compat["ok"] and {"/notes", "/"} <= {r["path"] for r in compat["requests"]}, compat


def test_an_unsafe_rename_is_refused_at_the_dry_run_naming_the_path_and_the_error(good):
    _, inv, _ = good
    result = run_replay("rename-column", env=dict(inv.env), load=lambda: load(inv),
                        run=lambda loaded: run_pipeline(inv, loaded=loaded))
    report = result.runs[0]
    assert result.exit_code == 1, (result.summary(), report.stage("dry-run").warnings,
                                   report.stage("dry-run").outputs.get("compat"))
    assert report.stage("dry-run").status == "failed"
    assert "GET /notes answered 500" in report.message, report.message
    assert 'UndefinedColumn: column "author" does not exist' in report.message, report.message
    assert "author" in columns(inv), result.summary()  # production's schema untouched
    assert result.before["commit"] == result.after["commit"], result.summary()  # the live release still serves


ADD_TAG = '''"""notes get an optional tag

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.add_column("notes", sa.Column("tag", sa.Text, nullable=True))


def downgrade() -> None:
    op.drop_column("notes", "tag")
'''


def test_a_failed_release_after_an_expand_migration_rolls_back_the_code_only_and_keeps_every_write(good):
    _, inv, _ = good
    repo = LocalRepo(Path(inv.env["DEPLOYPIPE_LOCAL_REPO"]))
    good_commit = repo.head()
    app = f"{APP}/app.py"
    broken = BAD_CHANGES["broken-release"]["transform"][app]  # every path but /health answers 500
    repo.commit_change({f"{APP}/migrations/versions/0003_tag.py": ADD_TAG, app: broken((repo.path / app).read_text())},
                       "Tags, and a broken refactor")
    try:
        report = run_pipeline(inv)
    finally:
        repo.reset_to(good_commit)
        with psycopg.connect(inv.env["DATABASE_URL"], autocommit=True) as conn:
            tagged = "tag" in columns(inv)
            conn.execute("alter table notes drop column if exists tag; "
                         "update alembic_version set version_num = '0002' where version_num = '0003'")
    assert report.exit_code == 3, report.message
    assert tagged  # the schema stays expanded
    [schema] = [item for item in report.rollback.items if item.stage == "migrate"]
    assert schema.action == "left_schema" and schema.verified, schema.summary
    assert "(auto: every applied migration is expand and the live release served its real requests" in schema.summary
    assert "rows kept: public.notes " in schema.summary and "nothing lost" in schema.summary, schema.summary
    assert schema.details["lost"] == {} and schema.details["kept"]["public.notes"]["since_backup"] >= 0


def test_plan_shows_each_migrations_phase(released):
    project, inv, _ = released
    out = io.StringIO()
    plan_inv = Invocation(pipeline=inv.pipeline, project_dir=project, env=dict(inv.env), stdout=out,
                          stderr=io.StringIO(), interactive=False)
    assert show_plan(plan_inv, as_json=False) == 0
    text = out.getvalue()
    assert "migration 0001: expand" in text and "migration 0002: expand" in text, text
