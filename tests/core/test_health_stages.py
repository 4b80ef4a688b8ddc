"""http.check and verify.health against a real HTTP server on 127.0.0.1 (time is a fake clock)."""

from __future__ import annotations

import json
from typing import Callable

import pytest
from helpers import LoopbackApp


class Behaviour:
    def __init__(self) -> None:
        self.respond: Callable[[], tuple[int, dict] | None] = lambda: (200, {"status": "healthy", "commit": "abc1234def"})
        self.paths: dict[str, Callable[[], tuple[int, dict] | None]] = {}  # other answers per path
        self.hits = 0
        self.log: list[str] = []
        self.url = ""

    def answer(self, request) -> tuple[int, dict] | None:
        self.hits += 1
        self.log.append(request.path)
        return self.paths.get(request.path, self.respond)()


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


COMMIT = "abc1234def"


def _verify_stage(tmp_path, server, **params):
    """verify.health on the stage's own context: the deploy stage released COMMIT; time is a fake clock."""
    from deploypipe.spec.targets import ServiceTarget, Targets
    from deploypipe.stages.base import ServiceRelease
    from deploypipe.stages.context import Resources
    from deploypipe.stages.http import VerifyHealth
    from deploypipe.testing import FakeClock, stage_context

    clock = FakeClock()
    resources = Resources(project_dir=tmp_path, state_dir=tmp_path / ".deploypipe", env={},
                          targets=Targets(services={"web": ServiceTarget(name="web", url=server.url)}))
    earlier = {"deploy": ServiceRelease(service="web", service_id="srv-1", deploy_id="dep-1", commit=COMMIT)}
    ctx = stage_context(resources, stage_id="verify", stage_type="verify.health", run_dir=tmp_path / "run",
                        earlier=earlier, sleep=clock, clock=clock.time)
    settings = {"service": "web", "successes": 3, "interval_s": 2, "observe_s": 0, "expect_json": {"status": "healthy"},
                "smoke": [{"path": "/api"}], **params}
    return VerifyHealth().run(ctx, VerifyHealth.Params(**settings)), clock


def _answers(*answers: tuple[int, dict] | None) -> Callable[[], tuple[int, dict] | None]:
    """Each answer in turn, then the last one for ever."""
    queue = list(answers)
    return lambda: queue.pop(0) if len(queue) > 1 else queue[0]


def test_a_smoke_request_answering_5xx_from_the_deployed_commit_fails_at_the_first_probe(tmp_path, server):
    from deploypipe.errors import StageFailed

    server.paths["/api"] = lambda: (500, {"error": "boom"})
    with pytest.raises(StageFailed, match="smoke GET /api: status 500, expected 200 from commit abc1234def, the new "
                                          "release") as failed:
        _verify_stage(tmp_path, server)
    assert server.log == ["/health", "/api", "/health"]  # probe, smoke, the probe that confirms the commit: no wait
    assert failed.value.message.startswith("smoke GET /api")


def test_a_smoke_answer_reporting_its_own_commit_is_judged_by_it(tmp_path, server):
    from deploypipe.errors import StageFailed

    server.paths["/api"] = _answers((500, {"commit": "fff0000aaa"}), (200, {"commit": COMMIT}))
    result, clock = _verify_stage(tmp_path, server)  # a stale instance's 500 does not fail the new release
    assert result.outputs.probes == 3 and clock.waits == [2.0, 2.0]
    server.paths["/api"] = lambda: (500, {"commit": COMMIT})
    server.log.clear()
    with pytest.raises(StageFailed, match="from commit abc1234def, the new release"):
        _verify_stage(tmp_path, server)
    assert server.log == ["/health", "/api"]


def test_a_smoke_5xx_counts_only_when_the_probes_on_both_sides_report_the_deployed_commit(tmp_path, server):
    from deploypipe.errors import StageFailed

    server.respond = _answers((200, {"status": "healthy", "commit": COMMIT}),
                              (200, {"status": "healthy", "commit": "fff0000aaa"}),  # the stable URL flipped back
                              (200, {"status": "healthy", "commit": COMMIT}))
    server.paths["/api"] = lambda: (500, {})
    with pytest.raises(StageFailed, match="from commit abc1234def, the new release"):
        _verify_stage(tmp_path, server)  # undecided at the first probe; the round is sent again at the next one
    assert server.log == ["/health", "/api", "/health"] * 2
    server.respond = lambda: (200, {"status": "healthy", "commit": "fff0000aaa"})  # a stale instance throughout
    server.paths["/api"] = lambda: (500, {})
    server.log.clear()
    with pytest.raises(StageFailed, match="failed 3 consecutive health checks"):
        _verify_stage(tmp_path, server)
    assert "/api" not in server.log  # no smoke request until the deployed commit answers


@pytest.mark.parametrize("answer, settings", [
    ((404, {}), {}),                      # not a 5xx: the old release may not have the path yet
    ((500, {}), {"expect_commit": False}),  # no commit to tell the new release from a stale instance
])
def test_other_smoke_failures_wait_for_the_health_verdict(tmp_path, server, answer, settings):
    from deploypipe.errors import StageFailed

    server.paths["/api"] = lambda: answer
    with pytest.raises(StageFailed, match=f"smoke GET /api: status {answer[0]}, expected 200$") as failed:
        _verify_stage(tmp_path, server, **settings)
    assert "the new release" not in failed.value.message
    assert server.log.count("/health") == 3 and server.log[-1] == "/api"


def test_a_confirming_probe_that_got_no_answer_is_sent_once_more(tmp_path, server):
    from deploypipe.errors import StageFailed

    server.respond = _answers((200, {"status": "healthy", "commit": COMMIT}), None,
                              (200, {"status": "healthy", "commit": COMMIT}))
    server.paths["/api"] = lambda: (500, {})
    with pytest.raises(StageFailed, match="from commit abc1234def, the new release"):
        _verify_stage(tmp_path, server)
    assert server.log == ["/health", "/api", "/health", "/health"]  # no wait: the hang-up is asked again at once
