"""verify.health keeps watching after the release is healthy: a release that degrades during the observation window
fails (after failure_threshold consecutive failures) and is rolled back; http.check polls until it succeeds."""

from __future__ import annotations

import httpx
import pytest
from harness import GOOD, NEW, deploy_pipeline, events_of, named, run_in_process, write_pipeline

from deploypipe.errors import StageFailed
from deploypipe.render.once import same_commit as lookup_same_commit
from deploypipe.stages.context import Resources
from deploypipe.stages.http import HttpCheck
from deploypipe.testing import FakeClock, stage_context


def test_a_release_that_degrades_during_the_observation_window_fails_and_is_rolled_back(tmp_path, render, clock):
    render.health.healthy_answers = {NEW: 3}  # healthy at first, then 500
    write_pipeline(tmp_path, deploy_pipeline(observe_s=10))
    report, _ = run_in_process(tmp_path, render, clock)
    assert report.exit_code == 3, report.message
    assert report.message == ("stage verify (verify.health) failed: "
                              f"{render.health.base}/svc/api/health became unhealthy during the observation window "
                              "(2 consecutive failures): status 500, expected 200")
    events = events_of(report.run_dir)
    degraded = [(e["consecutive_failures"], e["reason"]) for e in named(events, "health_degraded")]
    assert degraded == [(1, "status 500, expected 200"), (2, "status 500, expected 200")]
    observed = [e["ok"] for e in named(events, "health_probe") if e["phase"] == "observe"]
    assert observed == [True, True, False, False]
    assert render.live_commit() == GOOD


def test_a_release_that_stays_healthy_through_the_observation_window_is_verified(tmp_path, render, clock):
    write_pipeline(tmp_path, deploy_pipeline(observe_s=1))
    report, _ = run_in_process(tmp_path, render, clock)
    assert report.exit_code == 0, report.message
    verify = report.stage("verify")
    assert verify.summary == "healthy (1 probes), stable for 1s"
    assert verify.outputs == {"service": "api", "url": f"{render.health.base}/svc/api/health", "commit": NEW,
                              "probes": 1 + 10, "observed_s": 1.0, "smoke": 0}
    assert [e["phase"] for e in named(events_of(report.run_dir), "health_probe")] == ["verify"] + ["observe"] * 10


def _http_check(tmp_path, answers: list[int], **params):
    served = iter(answers)

    def app(request: httpx.Request) -> httpx.Response:
        return httpx.Response(next(served, 503), json={"status": "ok"})

    clock = FakeClock()
    resources = Resources(project_dir=tmp_path, state_dir=tmp_path / ".deploypipe", env={},
                          http_factory=lambda: httpx.Client(transport=httpx.MockTransport(app)))
    ctx = stage_context(resources, stage_id="check", stage_type="http.check", run_dir=tmp_path / "run", sleep=clock,
                        clock=clock.time)
    return HttpCheck().run(ctx, HttpCheck.Params(url="http://svc.test/health", **params)), clock


def test_http_check_polls_until_the_consecutive_successes_it_needs(tmp_path):
    result, clock = _http_check(tmp_path, [503, 200, 503, 200, 200], successes=2, interval_s=3, timeout_s=60)
    assert result.outputs.model_dump() == {"url": "http://svc.test/health", "probes": 5,
                                           "last": result.outputs.last}
    assert result.outputs.last.startswith("status 200 in ") and result.summary == result.outputs.last
    assert clock.waits == [3, 3, 3, 3]


def test_http_check_that_never_succeeds_fails_after_its_timeout_naming_the_last_answer(tmp_path):
    with pytest.raises(StageFailed) as caught:
        _http_check(tmp_path, [], interval_s=5, timeout_s=20)
    assert "http://svc.test/health not healthy after 20s (" in caught.value.message
    assert caught.value.message.endswith("probes): status 503, expected 200")


@pytest.mark.parametrize("a, b, same", [
    ("abc12", "abc12", True), ("ABC12", "abc12", True), ("abcdef1", "abcdef1" + "0" * 33, True),
    ("abcdef1" + "0" * 33, "abcdef1", True), ("abc12", "abc12" + "f" * 35, False), ("abc1234", "abc1235", False),
    (None, "abc1234", False), ("abc1234", None, False), ("", "", False),
])
def test_the_at_most_once_lookup_matches_commits_as_verify_health_does(a, b, same):
    from deploypipe.core.commits import same_commit

    assert lookup_same_commit(a, b) is same and same_commit(a, b) is same
