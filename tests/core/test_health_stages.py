"""http.check and verify.health against a real HTTP server on 127.0.0.1 (time is a fake clock)."""

from __future__ import annotations

import json
from typing import Callable

import pytest
from helpers import LoopbackApp


class Behaviour:
    def __init__(self) -> None:
        self.respond: Callable[[], tuple[int, dict]] = lambda: (200, {"status": "healthy", "commit": "abc1234def"})
        self.hits = 0
        self.url = ""

    def answer(self, request: object) -> tuple[int, dict]:
        self.hits += 1
        return self.respond()


@pytest.fixture
def server():
    behaviour = Behaviour()
    with LoopbackApp(behaviour.answer) as app:
        behaviour.url = app.base
        yield behaviour


def _verify_pipeline(url: str, **params) -> str:
    extra = "".join(f"      {k}: {json.dumps(v)}\n" for k, v in params.items())
    return (f"version: 1\nname: demo\ntargets:\n  services:\n    web: {{name: web, url: {json.dumps(url)}}}\n"
            f"stages:\n  - id: verify\n    type: verify.health\n    with:\n      service: web\n      expect_commit: false\n{extra}")


def test_http_check_passes_after_consecutive_successes(project, server):
    project.pipeline(f"version: 1\nname: demo\nstages:\n  - id: c\n    type: http.check\n"
                     f"    with: {{url: '{server.url}/health', successes: 3, interval_s: 1, expect_json: {{status: healthy}}}}\n")
    report, _ = project.run()
    assert report.exit_code == 0 and report.stages[0].outputs["probes"] == 3


def test_http_check_fails_with_the_last_reason_when_never_healthy(project, server):
    server.respond = lambda: (503, {"status": "unhealthy"})
    project.pipeline(f"version: 1\nname: demo\nstages:\n  - id: c\n    type: http.check\n"
                     f"    with: {{url: '{server.url}/health', timeout_s: 10, interval_s: 2}}\n")
    report, _ = project.run()
    assert report.exit_code == 1
    assert "not healthy after 10s" in report.message and "status 503, expected 200" in report.message


def test_verify_health_observes_the_window_and_passes_when_stable(project, server):
    project.pipeline(_verify_pipeline(server.url, observe_s=60, interval_s=2, expect_json={"status": "healthy"}))
    report, _ = project.run()
    assert report.exit_code == 0
    assert server.hits >= 3 + 30


def test_verify_health_catches_a_release_that_degrades_after_20_seconds(project, server):
    start = project.sleeps.now
    server.respond = lambda: (200, {"status": "healthy"}) if project.sleeps.now - start < 20 else (500, {"error": "boom"})
    project.pipeline(_verify_pipeline(server.url, observe_s=60, interval_s=2, failure_threshold=3))
    report, _ = project.run()
    assert report.exit_code == 1
    assert "became unhealthy during the observation window (3 consecutive failures): status 500" in report.message
    detected_after = project.sleeps.now - start
    assert 20 <= detected_after <= 20 + 3 * 2 + 1


def test_verify_health_json_assertion_failure_names_the_field(project, server):
    server.respond = lambda: (200, {"status": "healthy", "database": "error"})
    project.pipeline(_verify_pipeline(server.url, expect_json={"database": "ok"}, healthy_within_s=6))
    report, _ = project.run()
    assert report.exit_code == 1 and "JSON database is 'error', expected 'ok'" in report.message


def test_probe_rejects_a_stale_instance_reporting_another_commit(server):
    import httpx

    from deploypipe.core.probe import Probe, probe

    with httpx.Client() as http:
        stale = probe(http, Probe(url=server.url + "/health", expect_commit="fff9999aaa"))
        fresh = probe(http, Probe(url=server.url + "/health", expect_commit="abc1234def0011"))
    assert not stale.ok and "reports commit 'abc1234def', expected fff9999aaa (stale instance?)" in stale.reason
    assert fresh.ok


def test_smoke_request_failure_fails_the_stage(project, server):
    project.pipeline(_verify_pipeline(server.url, observe_s=0, smoke=[{"path": "/api", "expect_json": {"status": "x"}}]))
    report, _ = project.run()
    assert report.exit_code == 1 and "smoke GET /api: JSON status is 'healthy', expected 'x'" in report.message


def test_verify_health_fails_fast_when_a_live_release_fails_consecutive_checks(project, server):
    server.respond = lambda: (500, {"status": "unhealthy"})
    start = project.sleeps.now
    project.pipeline(_verify_pipeline(server.url, interval_s=2, failure_threshold=3, healthy_within_s=120))
    report, _ = project.run()
    assert report.exit_code == 1 and "failed 3 consecutive health checks: status 500" in report.message
    assert project.sleeps.now - start <= 3 * 2 + 1  # detection within threshold x interval (+1 s), not 120 s


def test_smoke_requests_run_as_soon_as_the_release_is_healthy(project, server):
    project.pipeline(_verify_pipeline(server.url, observe_s=60, smoke=[{"path": "/api", "expect_status": [404]}]))
    start = project.sleeps.now
    report, _ = project.run()
    assert report.exit_code == 1 and "smoke GET /api: status 200, expected 404" in report.message
    assert project.sleeps.now - start < 60  # before the observation window, not after it
