"""The release workflow's own steps, run with CI=true against the local Render: JSON report and step summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deploypipe.stages.report import Report

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def test_release_job_deploys_the_local_default_and_writes_json_and_a_step_summary(project_copy):
    from workflow_sim import load_workflow, run_job

    project = project_copy
    release = load_workflow(ROOT / ".github" / "workflows" / "release.yml")
    job = run_job(release, "deploy", cwd=project, skip=("Install deploypipe",),
                  context={"inputs": {"pipeline": "pipelines/local.yaml"},
                           "secrets": {"RENDER_API_KEY": "", "DATABASE_URL": "", "NOTIFY_WEBHOOK_URL": ""}})
    assert job.exit_code == 0, job.steps
    stdout = (project / "report-stdout.json").read_text()
    report = Report.model_validate_json(stdout)  # stdout is the report alone: logs went to stderr
    assert report.outcome == "deployed" and report.exit_code == 0
    assert [d.status for d in report.deploys] == ["live"]
    assert "deployed (exit 0)" in job.summary and "| deploy | `render.deploy` |" in job.summary
    assert f"Run directory: `{report.run_dir}`" in job.summary
    local = project / ".deploypipe" / "local"
    secrets = json.loads((local / "secrets.json").read_text())
    for value in secrets.values():
        assert value not in stdout and value not in job.summary
