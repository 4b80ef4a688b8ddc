"""notify.webhook against a real HTTP receiver on 127.0.0.1: what it posts, retries, and failures that stay warnings."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog.testing
from notify_fixtures import SECRET_PATH

from deploypipe.stages.context import Resources
from deploypipe.stages.notify import NotifyWebhook
from deploypipe.stages.report import Report
from deploypipe.testing import stage_context

RUN = {
    "run_id": "20251120T101500-ab12", "pipeline": "production", "outcome": "running", "exit_code": 0,
    "started_at": "2025-11-20T10:15:00+00:00",
    "stages": [
        {"id": "blueprint", "type": "lint.blueprint", "status": "succeeded", "duration_s": 0.1},
        {"id": "deploy-api", "type": "render.deploy", "status": "succeeded", "duration_s": 95.2},
        {"id": "notify", "type": "notify.webhook", "status": "not_run", "duration_s": 0.0},
    ],
    "deploys": [{"service": "api", "deploy_id": "dep-123", "commit": "0123456789abcdef", "status": "live"}],
    "rollback": {"performed": False, "verified": None, "items": []},
    "run_dir": ".deploypipe/runs/20251120T101500-ab12",
}

FAILED_RUN = {
    **RUN,
    "stages": [
        {"id": "deploy-api", "type": "render.deploy", "status": "succeeded", "duration_s": 95.2},
        {"id": "verify-api", "type": "verify.health", "status": "failed", "duration_s": 30.0},
        {"id": "notify", "type": "notify.webhook", "status": "not_run", "duration_s": 0.0},
    ],
    "rollback": {"performed": True, "verified": True,
                 "items": [{"stage": "deploy-api", "type": "render.deploy", "action": "rolled_back",
                            "summary": "rolled back to dep-100", "verified": True}]},
}


class Harness:
    def __init__(self, env: dict[str, str], run: dict[str, Any] | None, run_dir: Path):
        self.run_dir = run_dir
        self.events: list[dict[str, Any]] = []
        self.waits: list[float] = []
        self.http = httpx.Client()
        self.resources = Resources(project_dir=Path("."), state_dir=Path(".deploypipe"), env=env,
                                   http_factory=lambda: self.http)
        self.run_summary = run

    def run(self, **params: Any):
        run = Report.model_validate(self.run_summary) if self.run_summary is not None else None
        ctx = stage_context(self.resources, stage_id="notify", stage_type="notify.webhook", run_dir=self.run_dir,
                            run=run, emit=lambda event, **f: self.events.append({"event": event, **f}),
                            sleep=self.waits.append)
        params.setdefault("url_env", "NOTIFY_WEBHOOK_URL")
        return NotifyWebhook().run(ctx, NotifyWebhook.Params(**params))


@pytest.fixture
def harness(receiver, tmp_path):
    made: list[Harness] = []

    def make(run: dict[str, Any] | None = RUN, url: str | None = None) -> Harness:
        h = Harness({"NOTIFY_WEBHOOK_URL": receiver.url if url is None else url}, run, tmp_path / "run")
        made.append(h)
        return h

    yield make
    for h in made:
        h.http.close()


def assert_no_secret(*things: Any) -> None:
    for thing in things:
        assert "s3cr3tW3bh00kT0ken" not in json.dumps(thing, default=str)


def test_json_format_posts_the_run_summary(receiver, harness):
    h = harness()
    result = h.run()
    [request] = receiver.requests
    assert request["path"] == SECRET_PATH and request["content_type"] == "application/json"
    body = request["body"]
    assert body["outcome"] == "deployed" and body["pipeline"] == "production" and body["run_id"] == RUN["run_id"]
    assert [s["id"] for s in body["stages"]] == ["blueprint", "deploy-api"]  # not the notify stage itself
    assert body["deploys"] == RUN["deploys"] and body["report_path"] == RUN["run_dir"] + "/report.json"
    assert body["exit_code"] is None  # the run is still running: no exit code yet
    port = receiver.app.server.server_address[1]
    assert result.outputs.model_dump(exclude_unset=True) == {"sent": True, "status": 200, "attempts": 1, "destination": "http://127.0.0.1/***",
                              "format": "json", "outcome": "deployed"}
    assert result.warnings == ()
    assert h.events == [{"event": "notification_sent", "destination": "http://127.0.0.1/***", "status": 200,
                         "attempts": 1, "outcome": "deployed"}]
    assert str(port) not in result.outputs.model_dump_json()
    assert_no_secret(result.outputs, h.events, result.summary)


def test_slack_format_posts_only_a_short_text(receiver, harness):
    harness(run={**RUN, "outcome": "deployed", "exit_code": 0}).run(format="slack")
    assert receiver.requests[0]["body"] == {"text": (
        "deploypipe production: DEPLOYED (exit 0), run 20251120T101500-ab12\n"
        "2/2 stages succeeded\n"
        "api: live 0123456 (dep-123)\n"
        "report: .deploypipe/runs/20251120T101500-ab12/report.json")}


def test_a_failed_run_still_running_its_final_stages_is_reported_as_rolled_back(receiver, harness):
    harness(run=FAILED_RUN).run(format="slack")
    assert receiver.requests[0]["body"]["text"] == (
        "deploypipe production: ROLLED BACK, run 20251120T101500-ab12\n"
        "1/2 stages succeeded; verify-api (verify.health) failed\n"
        "api: live 0123456 (dep-123)\n"
        "rollback verified; deploy-api: rolled back to dep-100\n"
        "report: .deploypipe/runs/20251120T101500-ab12/report.json")


def test_an_unverified_rollback_says_a_human_must_act(receiver, harness):
    run = {**FAILED_RUN, "rollback": {"performed": True, "verified": False,
                                      "items": [{"stage": "deploy-api", "type": "render.deploy", "action": "failed",
                                                 "summary": "still failing", "verified": False}]}}
    result = harness(run=run).run()
    assert result.outputs.outcome == "needs_human"
    assert "rollback NOT VERIFIED - a human must act; deploy-api: still failing" in receiver.requests[0]["body"]["text"]


def test_only_the_chosen_results_are_notified(receiver, harness):
    result = harness().run(on=["failure"])
    assert receiver.requests == []
    assert result.outputs.model_dump(exclude_unset=True) == {"sent": False, "skipped": "run success; notifying only on ['failure']"}
    assert result.warnings == ()
    harness(run=FAILED_RUN).run(on=["failure"])
    assert len(receiver.requests) == 1


def test_a_503_is_retried_and_the_wait_goes_through_the_injected_sleep(receiver, harness):
    receiver.statuses = [503]
    h = harness()
    result = h.run()
    assert len(receiver.requests) == 2
    assert h.waits == [1.0]
    assert result.outputs.sent is True and result.outputs.attempts == 2


def test_a_429_waits_as_long_as_retry_after_says(receiver, harness):
    receiver.statuses = [429]
    receiver.headers = {"Retry-After": "7"}
    h = harness()
    assert h.run().outputs.sent is True
    assert h.waits == [7.0]


def test_three_failures_give_up_with_a_warning_not_a_failure(receiver, harness):
    receiver.statuses = [500, 502, 503]
    h = harness()
    result = h.run()
    assert len(receiver.requests) == 3 and h.waits == [1.0, 2.0]
    assert result.outputs.model_dump(exclude_unset=True) == {"sent": False, "error": "HTTP 503: invalid_token", "attempts": 3}
    assert result.warnings == ("notification not sent: HTTP 503: invalid_token",)
    assert h.events[-1] == {"event": "notification_failed", "error": "HTTP 503: invalid_token", "attempts": 3}


def test_a_4xx_is_not_retried(receiver, harness):
    receiver.statuses = [404]
    h = harness()
    result = h.run()
    assert len(receiver.requests) == 1 and h.waits == []
    assert result.outputs.model_dump(exclude_unset=True) == {"sent": False, "error": "HTTP 404: invalid_token", "attempts": 1}


def test_connection_refused_is_a_warning_without_the_secret_url(harness):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    h = harness(url=f"http://127.0.0.1:{port}{SECRET_PATH}")
    with structlog.testing.capture_logs() as logs:
        result = h.run()
    assert [e["event"] for e in logs] == ["notification_retrying", "notification_retrying", "notification_failed"]
    assert_no_secret(logs)
    assert result.outputs.sent is False and result.outputs.attempts == 3
    assert result.outputs.error.startswith("ConnectError: ")
    assert h.waits == [1.0, 2.0]
    assert_no_secret(result.outputs, result.warnings, h.events)


def test_a_webhook_that_never_answers_times_out_into_a_warning(receiver, harness):
    receiver.hang.clear()
    h = harness()
    result = h.run(timeout_s=0.2)
    assert result.outputs.model_dump(exclude_unset=True) == {"sent": False, "error": "ReadTimeout: timed out", "attempts": 3}
    assert len(receiver.requests) == 3


@pytest.mark.parametrize("value", [None, "", "   "])
def test_a_missing_webhook_variable_is_a_warning_and_nothing_is_posted(receiver, value, tmp_path):
    h = Harness({} if value is None else {"NOTIFY_WEBHOOK_URL": value}, RUN, tmp_path / "run")
    result = h.run()
    h.http.close()
    assert receiver.requests == []
    assert result.outputs.model_dump(exclude_unset=True) == {"sent": False, "error": "NOTIFY_WEBHOOK_URL is not set", "attempts": 0}
    assert result.warnings == ("notification not sent: NOTIFY_WEBHOOK_URL is not set",)


def test_an_invalid_url_is_a_warning_that_does_not_echo_it(harness):
    h = harness(url="ftp://hooks.example.com/s3cr3tW3bh00kT0ken")
    result = h.run()
    assert result.outputs.model_dump(exclude_unset=True) == {"sent": False, "attempts": 1,
                              "error": "UnsupportedProtocol: Request URL has an unsupported protocol 'ftp://'."}
    assert_no_secret(result.outputs, result.warnings, h.events)


def test_in_the_middle_of_a_run_it_posts_the_run_so_far(receiver, harness):
    result = harness(run=None).run(format="slack")
    assert result.outputs.sent is True
    assert receiver.requests[0]["body"]["text"].startswith("deploypipe test: DEPLOYED, run run-1\n0/0 stages succeeded")


def test_plan_names_the_variable_not_the_url():
    params = NotifyWebhook.Params(url_env="NOTIFY_WEBHOOK_URL", format="slack", on=["failure"])
    assert NotifyWebhook().plan(params) == "POST the run summary (slack) to $NOTIFY_WEBHOOK_URL on failure"
