"""Render's crash events and error lines: access-log lines never count; status calls a crash-looping service
FAILING (exit 1) with the app's own error line."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from deploypipe.commands.invocation import Invocation
from deploypipe.commands.status import Thresholds, check_status
from deploypipe.render.instances import DEFAULT_ERROR_PATTERN, look
from deploypipe.render.models import Deploy, Service, ServiceEvent
from deploypipe.render.observability import LogEntry, LogPage
from deploypipe.stages.diagnostics import headline

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
LIVE_AT = NOW - timedelta(minutes=5)
LINES = [
    'INFO:     127.0.0.1:5000 - "GET /health HTTP/1.1" 500 Internal Server Error',
    "heartbeat: 3 notes",
    "Traceback (most recent call last):",
    "NameError: name 'send_digest' is not defined",
]


class FakeRender:
    """A worker whose live release crashed ``crashes`` times since it went live."""

    def __init__(self, crashes: int, failed_deploy: bool = False):
        self.crashes = crashes
        self.failed_deploy = failed_deploy  # a newer deploy whose new instance failed while the crashes happened

    def find_service(self, name_or_id: str) -> Service:
        return Service(id="srv-1", name=name_or_id, type="background_worker", owner_id="tea-1", branch="main")

    def list_deploys(self, service_id: str, max_items: int | None = None, **_: object) -> list[Deploy]:
        live = Deploy(id="dep-1", status="live", commit_id="c" * 40, created_at=LIVE_AT, finished_at=LIVE_AT)
        failed = Deploy(id="dep-2", status="update_failed", commit_id="d" * 40,
                        created_at=NOW - timedelta(minutes=2), finished_at=NOW)
        return [failed, live] if self.failed_deploy else [live]

    def live_deploy(self, service_id: str) -> Deploy | None:
        return next(d for d in self.list_deploys(service_id) if d.status == "live")

    def list_events(self, service_id: str, **_: object) -> list[ServiceEvent]:
        return [ServiceEvent(id=f"evt-{i}", type="server_failed", timestamp=NOW - timedelta(seconds=30 * i),
                             details={"reason": {"nonZeroExit": 1}}) for i in range(self.crashes)]

    def list_logs(self, owner_id: str, **_: object) -> LogPage:
        entries = [LogEntry(id=str(i), timestamp=LIVE_AT + timedelta(seconds=i), message=line, labels={})
                   for i, line in enumerate(LINES)]
        return LogPage(logs=entries, has_more=False, next_start_time=NOW, next_end_time=NOW)


def test_access_log_lines_never_count_as_the_apps_errors():
    for pattern in (DEFAULT_ERROR_PATTERN, r"Error|Traceback|500"):
        seen = look(FakeRender(0), service_id="srv-1", owner_id="tea-1", since=LIVE_AT, until=NOW,
                    pattern=re.compile(pattern))
        assert seen.errors == ("Traceback (most recent call last):", "NameError: name 'send_digest' is not defined")


def test_the_failure_headline_prefers_the_apps_error_line_over_an_access_line():
    assert headline([LINES[2], LINES[3], LINES[0]]) == "NameError: name 'send_digest' is not defined"


def test_the_failure_headline_never_quotes_an_access_line_without_an_error_in_it():
    ok = 'INFO:     127.0.0.1:5000 - "GET /notes HTTP/1.1" 200 OK'
    assert headline([LINES[1], ok]) == "heartbeat: 3 notes"  # the app's own last line
    assert headline([ok, ok]) == ""  # a slow path: nothing in the app's words to add to the verdict


def _invocation(tmp_path: Path, crashes: int, failed_deploy: bool = False) -> Invocation:
    (tmp_path / "p.yaml").write_text("version: 1\nname: p\ntargets:\n  services:\n    worker: {name: w, kind: worker, "
                                     f"repo_dir: '{tmp_path}'}}\nstages:\n  - id: pre\n    type: render.preflight\n")
    return Invocation(pipeline="p.yaml", project_dir=tmp_path, env={}, stdout=io.StringIO(), stderr=io.StringIO(),
                      render_factory=lambda: FakeRender(crashes, failed_deploy))


def test_status_calls_a_crash_looping_worker_failing_with_its_error_line(tmp_path):
    report = check_status(_invocation(tmp_path, 3), Thresholds(), now=NOW)
    assert report.exit_code == 1 and not report.healthy and report.fingerprint
    worker = report.services[0]
    assert worker.problems == ["crashing"]
    assert worker.message.startswith("worker: FAILING — 3 instance failures in the last 15 min (exit status 1); "
                                     "app log: NameError: name 'send_digest' is not defined; live dep-1 at commit ")


def test_status_calls_a_quiet_worker_healthy(tmp_path):
    report = check_status(_invocation(tmp_path, 0), Thresholds(), now=NOW)
    assert report.exit_code == 0 and report.services[0].message.startswith("worker: healthy — live dep-1")


def test_instance_failures_of_a_newer_deploy_being_health_checked_are_not_the_live_releases(tmp_path):
    report = check_status(_invocation(tmp_path, 3, failed_deploy=True), Thresholds(), now=NOW)
    assert report.services[0].problems == [] and report.exit_code == 0
