"""`invoke deploy` on the embedded local default, end to end: real PostgreSQL, local Render, real app on loopback."""

from __future__ import annotations

import httpx
import psycopg
import pytest

from deploypipe.commands.history import run_summaries
from deploypipe.commands.rollback import rollback
from deploypipe.commands.run import run_pipeline
from deploypipe.replays.engine import production_state

pytestmark = pytest.mark.e2e


def _serving(inv) -> dict:
    from deploypipe.render.client import RenderClient

    with RenderClient.from_env(inv.env) as client:
        url = client.find_service("sampleapp").url
    return httpx.get(url + "/health", timeout=5).json() | {"url": url}


def _sync(project, inv) -> None:
    """What `invoke deploy` does first: commit the working tree's app into the repository the local Render builds."""
    from pathlib import Path

    from deploypipe.local.repo import LocalRepo

    LocalRepo(Path(inv.env["DEPLOYPIPE_LOCAL_REPO"])).sync_from(project, ["render.yaml", "examples"])


def test_deploy_redeploy_rollback_and_history_on_the_local_default(local):
    project, inv = local
    first = run_pipeline(inv)
    assert first.exit_code == 0, first.message
    assert [s.status for s in first.stages] == ["succeeded"] * len(first.stages)
    health = _serving(inv)
    deployed = first.deploys[0]
    assert health["commit"] == deployed.commit and health["revision"] == "0002" and health["database"] == "ok"

    with psycopg.connect(inv.env["DATABASE_URL"], autocommit=True) as conn:
        conn.execute("insert into notes (body) values ('kept across deploys')")
    app = project / "examples" / "sampleapp" / "app.py"
    app.write_text(app.read_text().replace('VERSION = "1.0.0"', 'VERSION = "1.0.1"'))
    _sync(project, inv)
    second = run_pipeline(inv)
    assert second.exit_code == 0, second.message
    assert second.deploys[0].deploy_id != deployed.deploy_id
    assert _serving(inv)["version"] == "1.0.1"
    assert httpx.get(health["url"] + "/notes").json()[0]["body"] == "kept across deploys"

    back = rollback(inv, service="web", to=None, run=None, yes=True)
    assert back.exit_code == 0 and back.outcome == "rollback_verified", back.message
    assert back.stages[0].outputs["to_deploy"] == deployed.deploy_id
    assert _serving(inv)["commit"] == deployed.commit and _serving(inv)["version"] == "1.0.0"

    runs = run_summaries(project / ".deploypipe", 10)
    assert [r["outcome"] for r in runs[:3]] == ["rollback_verified", "deployed", "deployed"]


def test_local_runs_leave_a_report_and_journal_without_secrets(local):
    project, inv = local
    report = run_pipeline(inv)
    from pathlib import Path

    run_dir = Path(report.run_dir)
    assert (run_dir / "events.jsonl").exists() and (run_dir / "report.json").exists()
    password = psycopg.conninfo.conninfo_to_dict(inv.env["DATABASE_URL"])["password"]
    api_key = inv.env["RENDER_API_KEY"]
    for path in run_dir.rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            assert password not in text and api_key not in text, path.name
    backups = project / ".deploypipe" / "backups"
    assert all(oct(p.stat().st_mode & 0o777) == "0o600" for p in backups.iterdir() if p.is_file())
    assert production_state(dict(inv.env), "sampleapp")["commit"] == report.deploys[0].commit
