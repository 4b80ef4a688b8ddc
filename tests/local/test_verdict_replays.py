"""Through the real CLI on the local default with its steady traffic: a healthy release of an app with a chronically
failing endpoint is deployed, a release that makes one path 600 ms slower is rolled back naming that path's latency,
and a second `invoke deploy` judges against the traffic the local Render kept from the first.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from local_default import ROOT, _private_tmp, make_project

from deploypipe.local.environment import stop_local

pytestmark = pytest.mark.e2e


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RENDER_", "DEPLOYPIPE_", "DATABASE_URL"))}
    return {**env, "DEPLOYPIPE_OBSERVE_S": "2", "CI": "true"}


def _invoke(project: Path, *args: str) -> tuple[int, dict]:
    """``invoke ARGS --json`` in ``project`` (this repository's tasks); (exit code, the JSON it printed)."""
    done = subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(ROOT), *args, "--json"],
                          cwd=project, env=_env(), capture_output=True, text=True, timeout=600)
    try:
        return done.returncode, json.loads(done.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"exit {done.returncode}; stdout: {done.stdout[-2000:]}; "
                             f"stderr: {done.stderr[-4000:]}") from None


@pytest.fixture(scope="module")
def project():
    """A copy of the local default; the local Render and its database stop after every command, as they do for a
    user (nothing is kept running), so what a run knows of earlier runs is what the data directory kept."""
    path = make_project(_private_tmp("deploypipe-verdict-"))
    yield path
    stop_local(path / ".deploypipe" / "local")
    shutil.rmtree(path, ignore_errors=True)


def _traffic(report: dict) -> dict:
    return next(stage for stage in report["stages"] if stage["type"] == "verify.traffic")


def test_a_healthy_release_of_an_app_with_a_chronically_failing_endpoint_is_deployed(project):
    code, body = _invoke(project, "replay", "flaky-endpoint")
    report = body["runs"][0]
    verdict = _traffic(report)["outputs"]["verdict"]
    assert code == 0, report["message"]
    assert body["unharmed"] and body["after"]["commit"] == report["deploys"][0]["commit"]
    assert verdict["status"] == "pass" and verdict["figures"]["baseline_requests"] > 0, verdict
    flaky = [path for path in verdict["worst_paths"] if path["route"] == "GET /flaky"]
    assert flaky and flaky[0]["errors"] >= 1, verdict  # the new release's first GET /flaky answered 500: seen, not held
    assert "deployed and verified" in report["message"], report["message"]


def test_a_release_that_makes_get_notes_600_ms_slower_is_rolled_back_naming_the_path_and_both_latencies(project):
    code, body = _invoke(project, "replay", "slow-path")
    report = body["runs"][0]
    message = report["message"]
    assert code == 3, message
    traffic = _traffic(report)
    assert traffic["status"] == "failed" and traffic["outputs"]["verdict"]["figures"]["baseline_requests"] > 0
    assert "GET /notes" in message and "latency" in message.lower(), message
    latencies = [float(ms.replace(",", "")) for ms in re.findall(r"(\d[\d,]*(?:\.\d+)?) ?ms\b", message)]
    assert any(ms >= 600 for ms in latencies) and any(ms < 100 for ms in latencies), message  # new and baseline
    assert report["rollback"]["performed"] and report["rollback"]["verified"], message
    assert body["unharmed"], body


def test_a_second_deploy_judges_against_the_traffic_the_local_render_kept_from_the_first(project):
    first_started = datetime.now(UTC)
    code, first = _invoke(project, "deploy", "--force")
    assert code == 0, first["message"]
    first_ended = datetime.now(UTC)
    kept = project / ".deploypipe" / "local" / "render" / "telemetry.jsonl"
    recorded = [json.loads(line)["q"] for line in kept.read_text().splitlines() if line.startswith('{"q"')]
    assert any(first_started.timestamp() <= r[0] <= first_ended.timestamp() for r in recorded)

    code, second = _invoke(project, "deploy", "--force", "--keep-running")
    assert code == 0, second["message"]
    figures = _traffic(second)["outputs"]["verdict"]["figures"]
    assert figures["baseline_requests"] > 0, figures
    from deploypipe.render.client import RenderClient

    local = json.loads((project / ".deploypipe" / "local" / "render" / "server.json").read_text())
    secrets = json.loads((project / ".deploypipe" / "local" / "secrets.json").read_text())
    with RenderClient.from_env({"RENDER_API_URL": local["url"], "RENDER_API_KEY": secrets["api_key"]}) as client:
        service = client.find_service("sampleapp")
        series = client.http_request_metrics(service.id, start=first_started, end=first_ended, resolution_s=30)
    assert sum(value for s in series for _, value in s.points) > 0  # the first run's requests, after a restart
