"""notify.webhook at the end of a real pipeline run (when: always): it sees the run summary the runner hands it."""

from __future__ import annotations

import io

from helpers import change_then_check
from notify_fixtures import SECRET_PATH

from deploypipe.commands.invocation import Invocation
from deploypipe.commands.run import run_pipeline

NOTIFY = """\
  - id: notify
    type: notify.webhook
    when: always
    on_failure: continue
    with: {url_env: NOTIFY_WEBHOOK_URL, format: %s}
"""


def _run(tmp_path, receiver, check: str, fmt: str = "json", url: str | None = None):
    (tmp_path / "p.yaml").write_text(change_then_check(check, name="notify-check") + NOTIFY % fmt)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "NOTIFY_WEBHOOK_URL": url or receiver.url}
    inv = Invocation(pipeline="p.yaml", project_dir=tmp_path, env=env, json_output=True, stdout=io.StringIO(),
                     stderr=io.StringIO(), interactive=False, sleep=lambda s: None)
    return run_pipeline(inv)


def test_a_rolled_back_run_is_notified_as_rolled_back(tmp_path, receiver):
    report = _run(tmp_path, receiver, "exit 1")
    assert report.outcome == "rolled_back"
    [request] = receiver.requests
    body = request["body"]
    assert request["path"] == SECRET_PATH
    assert body["outcome"] == "rolled_back" and body["run_id"] == report.run_id
    assert [(s["id"], s["status"]) for s in body["stages"]] == [("change", "succeeded"), ("check", "failed")]
    assert body["rollback"]["performed"] is True and body["rollback"]["verified"] is True
    notify = next(s for s in report.stages if s.id == "notify")
    assert notify.status == "succeeded" and notify.outputs["sent"] is True


def test_a_successful_run_is_notified_in_slack_format(tmp_path, receiver):
    report = _run(tmp_path, receiver, "true", fmt="slack")
    assert report.outcome == "deployed"
    text = receiver.requests[0]["body"]["text"]
    assert text.startswith(f"deploypipe notify-check: DEPLOYED, run {report.run_id}\n2/2 stages succeeded\n")


def test_an_unreachable_webhook_leaves_the_outcome_and_exit_code_alone(tmp_path, receiver):
    report = _run(tmp_path, receiver, "true", url="http://127.0.0.1:9/hook/s3cr3tW3bh00kT0ken")
    assert report.outcome == "deployed" and report.exit_code == 0
    notify = next(s for s in report.stages if s.id == "notify")
    assert notify.status == "succeeded" and notify.outputs["sent"] is False
    assert notify.warnings[0].startswith("notification not sent: ConnectError")
    assert "s3cr3tW3bh00kT0ken" not in str(report)
