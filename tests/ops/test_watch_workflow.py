"""The watch workflow: its structure, and its own steps' scripts run (CI=true) against the local Render, notifying
a new problem once, staying quiet while it lasts, and saying "recovered" once."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from workflow_sim import evaluate, load_workflow, run_job

ROOT = Path(__file__).resolve().parents[2]
WATCH = load_workflow(ROOT / ".github" / "workflows" / "watch.yml")
JOB = WATCH["jobs"]["watch"]
PIPELINE_EXPR = "inputs.pipeline || 'pipelines/production.yaml'"


def step(name_start: str) -> dict:
    return next(s for s in JOB["steps"] if s["name"].startswith(name_start))


def test_watch_runs_every_15_minutes_and_by_hand_with_a_pipeline_input():
    assert WATCH["on"]["schedule"] == [{"cron": "*/15 * * * *"}]
    assert WATCH["on"]["workflow_dispatch"]["inputs"]["pipeline"]["default"] == "pipelines/production.yaml"
    assert set(WATCH["on"]) == {"schedule", "workflow_dispatch"}
    assert WATCH["concurrency"] == {"group": "deploypipe-watch-${{ " + PIPELINE_EXPR + " }}",
                                    "cancel-in-progress": False}
    assert evaluate(PIPELINE_EXPR, {"inputs": {}}) == "pipelines/production.yaml"


def test_watch_is_read_only_and_keeps_secrets_and_inputs_out_of_scripts():
    assert WATCH["permissions"] == {"contents": "read"} and "permissions" not in JOB
    assert JOB["runs-on"] == "ubuntu-latest" and isinstance(JOB["timeout-minutes"], int)
    for s in JOB["steps"]:
        assert s.get("name") and ("uses" in s) != ("run" in s), s
        if "run" in s:
            assert not re.search(r"\$\{\{\s*(secrets|inputs|github\.event|vars)\.", s["run"]), s["name"]
        else:
            assert re.fullmatch(r"actions/[\w-]+(/[\w-]+)?@v\d+", s["uses"]), s["uses"]
    assert JOB["env"]["PIPELINE"] == "${{ " + PIPELINE_EXPR + " }}"


def test_the_status_step_runs_deploypipe_status_json_with_the_webhook_and_the_state_file():
    status = step("Status")
    assert status["env"] == {"RENDER_API_KEY": "${{ secrets.RENDER_API_KEY }}",
                             "RENDER_API_URL": "${{ vars.RENDER_API_URL || 'https://api.render.com/v1' }}",
                             "NOTIFY_WEBHOOK_URL": "${{ secrets.NOTIFY_WEBHOOK_URL }}", "CI": "true"}
    assert "DATABASE_URL" not in json.dumps(WATCH)  # status never needs the database
    [line] = [line for line in status["run"].splitlines() if line.startswith("deploypipe ")]
    command, _, redirect = line.partition(" > ")
    assert shlex.split(command) == ["deploypipe", "status", "--pipeline", "$PIPELINE", "--json", "--notify-env",
                                    "NOTIFY_WEBHOOK_URL", "--state", "$STATE"]
    assert redirect == "status.json" and "set +e" in status["run"]


def test_the_state_file_travels_between_runs_in_the_actions_cache_newest_first():
    restore, save = step("Restore the last notified problem"), step("Keep the notified problem")
    assert restore["uses"] == "actions/cache/restore@v4" and save["uses"] == "actions/cache/save@v4"
    state_dir = str(Path(JOB["env"]["STATE"]).parent)
    assert restore["with"]["path"] == save["with"]["path"] == state_dir == ".deploypipe-watch"
    prefix = "deploypipe-watch-${{ " + PIPELINE_EXPR + " }}-"
    assert restore["with"]["restore-keys"] == prefix
    assert save["with"]["key"] == prefix + "${{ github.run_id }}-${{ github.run_attempt }}"  # a key is write-once
    assert save["if"] == "steps.status.outputs.notified == 'true'"  # a new cache only when the state changed
    names = [s["name"] for s in JOB["steps"]]
    assert names.index(restore["name"]) < names.index("Status") < names.index(save["name"])


def test_the_job_fails_only_when_the_check_failed_not_when_production_is_frozen():
    last = JOB["steps"][-1]
    assert last["if"] == "always()" and last["env"] == {"EXIT_CODE": "${{ steps.status.outputs.exit_code }}"}
    assert step("Summary")["if"] == "always()"


def _run(local_render, receiver, pipeline: str = "watch.yaml"):
    job = run_job(WATCH, "watch", cwd=local_render.project, skip=("Install deploypipe",),
                  context={"inputs": {"pipeline": pipeline},
                           "secrets": {"RENDER_API_KEY": local_render.env["RENDER_API_KEY"],
                                       "NOTIFY_WEBHOOK_URL": receiver.url},
                           "vars": {"RENDER_API_URL": local_render.env["RENDER_API_URL"]}})
    status = (local_render.project / "status.json").read_text()
    return job, json.loads(status) if status else None


@pytest.mark.e2e
def test_a_frozen_production_is_notified_once_then_recovered_once(local_render, receiver):
    state = local_render.project / ".deploypipe-watch"
    local_render.pipeline()
    live = local_render.deploy()
    failed = [local_render.deploy(fail="build"), local_render.deploy(fail="update")]
    if state.exists():
        for file in state.iterdir():
            file.unlink()

    first, report = _run(local_render, receiver)

    assert first.exit_code == 0 and ("Status", 0) in first.steps
    assert report["exit_code"] == 1 and report["notification"] == "sent: problem"
    [sent] = receiver.requests
    assert sent["path"].endswith("s3cr3tW3bh00kT0ken") and sent["body"]["event"] == "problem"
    assert sent["body"]["text"] == (
        "deploypipe watched: PRODUCTION FROZEN\nweb: FROZEN — the last 2 deploys failed "
        f"({failed[1].id} update_failed, {failed[0].id} build_failed); live {live.id} at commit "
        f"{live.commit_id[:7]} since " + report["services"][0]["message"].split(" since ")[1])
    assert first.summary.startswith("## deploypipe watch watched: PRODUCTION FROZEN\n")
    assert json.loads((state / "state.json").read_text())["fingerprint"] == report["fingerprint"]

    second, report = _run(local_render, receiver)  # 15 minutes later: same problem, no second message

    assert second.exit_code == 0 and report["exit_code"] == 1
    assert report["notification"] == "unchanged: already notified" and len(receiver.requests) == 1

    local_render.deploy(fail="build")  # the problem grows, but it is the same problem (same live deploy)
    assert _run(local_render, receiver)[1]["notification"] == "unchanged: already notified"

    local_render.deploy()
    third, report = _run(local_render, receiver)

    assert third.exit_code == 0 and report["healthy"] and report["notification"] == "sent: recovered"
    assert len(receiver.requests) == 2 and receiver.requests[1]["body"]["event"] == "recovered"
    assert receiver.requests[1]["body"]["text"].startswith("deploypipe watched: RECOVERED\nweb: healthy — live ")
    assert _run(local_render, receiver)[1]["notification"] == "unchanged: healthy"
    assert len(receiver.requests) == 2


@pytest.mark.e2e
def test_a_watch_that_cannot_check_fails_the_job_with_exit_2_and_notifies_nothing(local_render, receiver):
    job, report = _run(local_render, receiver, pipeline="missing.yaml")

    assert job.exit_code == 2 and report is None and receiver.requests == []
    assert job.steps[-1] == ("Exit with the watch's result", 2)
    assert "the status could not be checked" in job.summary
