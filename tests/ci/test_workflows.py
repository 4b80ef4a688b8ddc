"""The GitHub Actions workflows: the structure Actions requires, safe habits, and their scripts run for real."""

from __future__ import annotations

import json
import re
import shlex
import textwrap
from pathlib import Path

import pytest
from workflow_sim import evaluate, load_workflow, run_job

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
RELEASE = load_workflow(WORKFLOWS / "release.yml")
ROLLBACK = load_workflow(WORKFLOWS / "rollback.yml")
BOTH = pytest.mark.parametrize("workflow", [RELEASE, ROLLBACK], ids=["release", "rollback"])

SECRETS = {"RENDER_API_KEY": "rnd_notARealKey123456", "DATABASE_URL": "postgresql://u:pw-secret@127.0.0.1:1/db",
           "NOTIFY_WEBHOOK_URL": ""}

CHANGE_THEN_FAIL = """\
version: 1
name: ci-check
stages:
  - id: change
    type: shell.run
    with: {command: "echo changed > state.txt", changes_production: true, compensate_command: "echo undone > state.txt"}
  - id: check
    type: shell.run
    with: {command: "echo 'bad | thing' >&2; exit 3"}
"""

CHANGE = """\
version: 1
name: ci-ok
stages:
  - id: change
    type: shell.run
    with: {command: "echo changed > state.txt", changes_production: true, compensate_command: "echo undone > state.txt"}
"""


def steps(workflow: dict) -> list[dict]:
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def step(workflow: dict, name_start: str) -> dict:
    return next(s for s in steps(workflow) if s.get("name", "").startswith(name_start))


@BOTH
def test_each_workflow_has_a_name_triggers_and_jobs_with_steps(workflow):
    assert workflow["name"] and workflow["on"] and workflow["jobs"]
    for job in workflow["jobs"].values():
        assert job["runs-on"] == "ubuntu-latest" and isinstance(job["timeout-minutes"], int)
        assert job["steps"]
        for s in job["steps"]:
            assert ("uses" in s) != ("run" in s), s
            assert s.get("name"), s
            if "uses" in s:
                assert re.fullmatch(r"actions/[\w-]+@v\d+", s["uses"]), s["uses"]


@BOTH
def test_permissions_are_read_only(workflow):
    assert set(workflow["permissions"].values()) == {"read"}
    assert set(workflow["permissions"]) <= {"contents", "actions"}
    assert all("permissions" not in job for job in workflow["jobs"].values())


@BOTH
def test_secrets_and_inputs_never_appear_inside_scripts(workflow):
    for s in steps(workflow):
        if "run" in s:
            assert not re.search(r"\$\{\{\s*(secrets|inputs|github\.event)\.", s["run"]), s["name"]


@BOTH
def test_the_job_ends_by_exiting_with_deploypipes_exit_code_whatever_happened(workflow):
    [job] = workflow["jobs"].values()
    last = job["steps"][-1]
    assert last["if"] == "always()" and last["run"] == 'exit "${EXIT_CODE:-1}"'
    assert re.fullmatch(r"\$\{\{ steps\.\w+\.outputs\.exit_code \}\}", last["env"]["EXIT_CODE"])


@BOTH
def test_summary_and_run_records_are_published_even_on_failure(workflow):
    summary = step(workflow, "Summary")
    assert summary["if"] == "always()"
    assert summary["run"].startswith("deploypipe ci-summary report-stdout.json ")
    upload = step(workflow, "Upload the run record")
    assert upload["if"] == "always()" and upload["uses"] == "actions/upload-artifact@v4"
    assert upload["with"]["path"] == ".deploypipe/runs/"  # never .deploypipe/backups (production data)


@BOTH
def test_the_deploypipe_step_gets_the_secrets_from_github_secrets_and_runs_as_ci(workflow):
    [s] = [s for s in steps(workflow) if "deploypipe deploy" in s.get("run", "") or "deploypipe rollback" in s.get("run", "")]
    assert s["env"] == {"RENDER_API_KEY": "${{ secrets.RENDER_API_KEY }}", "DATABASE_URL": "${{ secrets.DATABASE_URL }}",
                        "NOTIFY_WEBHOOK_URL": "${{ secrets.NOTIFY_WEBHOOK_URL }}", "CI": "true"}
    assert "set +e" in s["run"] and 'echo "exit_code=$code" >> "$GITHUB_OUTPUT"' in s["run"]


def test_release_runs_on_version_tags_and_by_hand_with_a_pipeline_input():
    on = RELEASE["on"]
    assert on["push"] == {"tags": ["v*"]}
    assert on["workflow_dispatch"]["inputs"]["pipeline"]["default"] == "pipelines/production.yaml"
    assert "pull_request" not in on and "branches" not in on["push"]


def test_release_concurrency_queues_per_pipeline_and_never_cancels_a_running_release():
    concurrency = RELEASE["concurrency"]
    assert concurrency["cancel-in-progress"] is False
    context = {"inputs": {"pipeline": ""}}
    assert concurrency["group"] == "deploypipe-release-${{ inputs.pipeline || 'pipelines/production.yaml' }}"
    assert evaluate("inputs.pipeline || 'pipelines/production.yaml'", context) == "pipelines/production.yaml"


def test_rollback_shares_the_release_concurrency_group_of_its_pipeline():
    assert ROLLBACK["concurrency"] == {"group": "deploypipe-release-${{ inputs.pipeline }}", "cancel-in-progress": False}
    assert ROLLBACK["on"]["workflow_dispatch"]["inputs"]["pipeline"]["default"] == "pipelines/production.yaml"


def test_release_deploy_command_line_is_deploypipe_deploy_pipeline_json():
    script = step(RELEASE, "Deploy")["run"]
    [line] = [line for line in script.splitlines() if line.startswith("deploypipe ")]
    command, _, redirect = line.partition(" > ")
    assert shlex.split(command) == ["deploypipe", "deploy", "--pipeline", "$PIPELINE", "--json"]
    assert redirect == "report-stdout.json"
    assert RELEASE["jobs"]["deploy"]["env"]["PIPELINE"] == "${{ inputs.pipeline || 'pipelines/production.yaml' }}"
    assert step(RELEASE, "Check out")["with"] == {"fetch-depth": 0}
    assert step(RELEASE, "Set up Python")["with"]["python-version"] == "3.11"
    assert step(RELEASE, "Install deploypipe")["run"] == "pip install ."


def test_rollback_inputs_and_command_line():
    inputs = ROLLBACK["on"]["workflow_dispatch"]["inputs"]
    assert set(inputs) == {"pipeline", "service", "to", "run", "release_run", "reason"}
    assert inputs["reason"]["required"] is True
    assert all(inputs[k]["required"] is False for k in ("service", "to", "run", "release_run"))
    script = step(ROLLBACK, "Roll back")["run"]
    assert 'args=(--pipeline "$PIPELINE" --yes --json)' in script
    assert 'deploypipe rollback "${args[@]}" > report-stdout.json' in script


def _project(tmp_path: Path, pipeline: str) -> Path:
    (tmp_path / "p.yaml").write_text(textwrap.dedent(pipeline))
    return tmp_path


def test_release_job_scripts_fail_with_exit_3_and_summarize_a_rolled_back_run(tmp_path):
    project = _project(tmp_path, CHANGE_THEN_FAIL)
    job = run_job(RELEASE, "deploy", cwd=project, skip=("Install deploypipe",),
                  context={"inputs": {"pipeline": "p.yaml"}, "secrets": SECRETS})
    assert job.steps[-1] == ("Exit with deploypipe's exit code", 3)
    assert [code for name, code in job.steps if name in ("Deploy", "Summary")] == [0, 0]
    assert job.exit_code == 3
    assert (project / "state.txt").read_text() == "undone\n"
    report = json.loads((project / "report-stdout.json").read_text())
    assert report["outcome"] == "rolled_back"
    assert job.summary.startswith("## ↩️ deploypipe ci-check: rolled back (exit 3)\n")
    assert "| check | `shell.run` | ❌ failed: StageFailed: " in job.summary and "bad \\| thing" in job.summary
    assert f"Run directory: `{report['run_dir']}`" in job.summary
    assert (project / ".deploypipe" / "runs" / report["run_id"] / "report.json").is_file()
    assert "pw-secret" not in (project / "report-stdout.json").read_text() + job.summary


def test_release_job_with_an_invalid_pipeline_exits_2_and_says_there_is_no_report(tmp_path):
    project = _project(tmp_path, "version: 1\nname: broken\nstages: [{id: x, type: no.such}]\n")
    job = run_job(RELEASE, "deploy", cwd=project, skip=("Install deploypipe",),
                  context={"inputs": {"pipeline": "p.yaml"}, "secrets": SECRETS})
    assert job.exit_code == 2
    assert job.summary.startswith("## ⛔ deploypipe: no run report (exit 2)\n")


def test_rollback_job_undoes_a_run_and_exits_0(tmp_path):
    project = _project(tmp_path, CHANGE)
    release = run_job(RELEASE, "deploy", cwd=project, skip=("Install deploypipe",),
                      context={"inputs": {"pipeline": "p.yaml"}, "secrets": SECRETS})
    assert release.exit_code == 0 and (project / "state.txt").read_text() == "changed\n"
    run_id = json.loads((project / "report-stdout.json").read_text())["run_id"]
    job = run_job(ROLLBACK, "rollback", cwd=project, skip=("Install deploypipe",),
                  context={"inputs": {"pipeline": "p.yaml", "run": run_id, "reason": "bad release"},
                           "secrets": SECRETS, "github": {"actor": "octocat"}})
    assert job.exit_code == 0 and (project / "state.txt").read_text() == "undone\n"
    assert job.summary.startswith("**Rollback requested by** `octocat`: bad release\n\n## ✅ deploypipe ci-ok: "
                                  "rollback verified (exit 0)")


def test_rollback_job_without_the_run_record_exits_2_with_a_hint(tmp_path):
    project = _project(tmp_path, CHANGE)
    job = run_job(ROLLBACK, "rollback", cwd=project, skip=("Install deploypipe",),
                  context={"inputs": {"pipeline": "p.yaml", "run": "20250101T000000Z-abcdef", "reason": "r"},
                           "secrets": SECRETS, "github": {"actor": "octocat"}})
    assert job.exit_code == 2
    assert "no run report (exit 2)" in job.summary
