"""verify.health checks the commit the service reports: equal ids pass whatever their length (a short commit id
named in a pipeline), a different id or an abbreviation shorter than 7 characters fails."""

from __future__ import annotations

import httpx
import pytest

from deploypipe.errors import StageFailed
from deploypipe.spec.targets import ServiceTarget, Targets
from deploypipe.stages.base import ServiceRelease
from deploypipe.stages.context import Resources
from deploypipe.stages.http import VerifyHealth
from deploypipe.testing import FakeClock, stage_context


def _verify(tmp_path, expected: str, reported: str | None) -> object:
    def app(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"status": "healthy", "commit": reported})

    clock = FakeClock()
    resources = Resources(project_dir=tmp_path, state_dir=tmp_path / ".deploypipe", env={},
                          targets=Targets(services={"api": ServiceTarget(name="api", url="http://api.test")}),
                          http_factory=lambda: httpx.Client(transport=httpx.MockTransport(app)))
    earlier = {"deploy": ServiceRelease(service="api", service_id="srv-1", deploy_id="dep-1", commit=expected)}
    ctx = stage_context(resources, stage_id="verify", stage_type="verify.health", run_dir=tmp_path / "run",
                        earlier=earlier, sleep=clock, clock=clock.time)
    params = VerifyHealth.Params(service="api", successes=2, interval_s=1, healthy_within_s=10, observe_s=0,
                                 failure_threshold=2, expect_json={"status": "healthy"})
    return VerifyHealth().run(ctx, params)


@pytest.mark.parametrize("commit", ["abc12", "a1", "7", "ABC12"])
def test_a_reported_commit_equal_to_the_expected_one_passes_even_when_shorter_than_7_characters(tmp_path, commit):
    result = _verify(tmp_path, commit, commit.lower() if commit.isupper() else commit)
    assert result.outputs.commit == commit


def test_a_full_sha_matching_the_expected_7_character_abbreviation_passes(tmp_path):
    _verify(tmp_path, "abcdef1", "abcdef1" + "0" * 33)


@pytest.mark.parametrize("expected, reported", [
    ("abc12", "abc13"),           # a different short id
    ("abc12", "abc1"),            # a shorter prefix is not the same commit
    ("abc12", "abc12" + "f" * 35),  # an abbreviation under 7 characters does not vouch for a full sha
    ("abcdef1" + "0" * 33, "abcdef2" + "0" * 33),
    ("abc12", None),
    ("abc12", ""),
])
def test_a_reported_commit_that_is_not_the_expected_one_fails_the_verification(tmp_path, expected, reported):
    with pytest.raises(StageFailed, match="reports commit"):
        _verify(tmp_path, expected, reported)
