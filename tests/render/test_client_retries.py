"""Retries through the local Render: 429, 5xx bursts, dropped connections, lost answers, 202 Queued, pacing."""

from __future__ import annotations

import httpx
import pytest
from render_fixtures import API_KEY, Counter, make_client
from structlog.testing import capture_logs

from deploypipe.emulator.app import create_app
from deploypipe.emulator.transport import InProcessTransport
from deploypipe.errors import ProviderError, TransientProviderError

SRV = "srv-web0000000000000000"
SHA = "c0ffee" + "0" * 34


class RefusedFirst(httpx.BaseTransport):
    """The network in front of the local Render refuses the first ``n`` connections (nothing is sent)."""

    def __init__(self, inner: httpx.BaseTransport, n: int):
        self.inner, self.n = inner, n

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.n > 0:
            self.n -= 1
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


def _deploys(render) -> list:
    return render.service().deploys


def test_a_429_waits_exactly_what_retry_after_says_then_succeeds(render):
    render.emulator.faults.add(action="status", match="GET /services/*", status=429, retry_after_s=7)
    with capture_logs() as logs:
        assert render.client.get_service(SRV).name == "web"
    assert render.clock.waits == [7.0]
    retrying = [e for e in logs if e["event"] == "render_retrying"]
    assert retrying[0]["attempt"] == 1 and retrying[0]["wait_s"] == 7.0 and "429" in retrying[0]["reason"]


def test_a_burst_of_5xx_backs_off_exponentially_with_jitter_then_succeeds(render):
    render.emulator.faults.add(action="status", match="GET /services/*", status=502, times=3)
    assert render.client.get_service(SRV).id == SRV
    waits = render.clock.waits
    assert len(waits) == 3 and render.counter.count("GET") == 4
    for attempt, wait in enumerate(waits, start=1):
        base = 0.5 * 2 ** (attempt - 1)
        assert base / 2 <= wait <= base


def test_a_dropped_connection_on_a_get_is_retried(render):
    render.emulator.faults.add(action="drop", match="GET /services/*")
    assert render.client.get_service(SRV).name == "web"
    assert len(render.clock.waits) == 1


def test_a_400_is_not_retried(render):
    with pytest.raises(ProviderError):
        render.client.rollback(SRV, "")
    assert render.clock.waits == [] and render.counter.count("POST") == 1


def test_a_trigger_answered_then_timed_out_creates_exactly_one_deploy(render):
    render.emulator.faults.add(action="accept_then_timeout", match="POST /services/*/deploys")
    with capture_logs() as logs:
        deploy = render.client.trigger_deploy(SRV, commit_id=SHA)
    assert [d.id for d in _deploys(render)] == [deploy.id]
    assert deploy.commit_id == SHA
    assert render.counter.count("POST") == 1
    events = [e["event"] for e in logs]
    assert "deploy_trigger_ambiguous" in events and "deploy_found_after_ambiguous_trigger" in events


def test_a_dropped_trigger_that_created_nothing_is_sent_again_after_looking(render):
    render.emulator.faults.add(action="drop", match="POST /services/*/deploys")
    with capture_logs() as logs:
        deploy = render.client.trigger_deploy(SRV, commit_id=SHA)
    assert [d.id for d in _deploys(render)] == [deploy.id]
    assert render.counter.sent == [
        f"POST /v1/services/{SRV}/deploys",  # dropped before Render acted
        f"GET /v1/services/{SRV}/deploys",  # nothing created: it is safe to send again
        f"GET /v1/services/{SRV}/deploys",  # still nothing after the back-off
        f"POST /v1/services/{SRV}/deploys",
    ]
    assert [e["event"] for e in logs if e["event"].startswith("deploy_")] == ["deploy_trigger_ambiguous"]


def test_a_5xx_burst_on_a_trigger_never_yields_two_deploys(render):
    render.emulator.faults.add(action="status", match="POST /services/*/deploys", status=503, times=2)
    deploy = render.client.trigger_deploy(SRV, commit_id=SHA)
    assert [d.id for d in _deploys(render)] == [deploy.id]
    assert render.counter.count("POST") == 3


def test_a_refused_connection_on_a_trigger_is_retried_without_a_lookup(fake_clock, render):
    counter = Counter()
    transport = RefusedFirst(InProcessTransport(create_app(render.emulator)), 2)
    http = httpx.Client(transport=transport, base_url="http://render.local/v1",
                        headers={"Authorization": f"Bearer {API_KEY}"})
    client = make_client(http, fake_clock, counter)
    deploy = client.trigger_deploy(SRV, commit_id=SHA)
    assert [d.id for d in _deploys(render)] == [deploy.id]
    assert counter.sent == [f"POST /v1/services/{SRV}/deploys"] * 3 and len(fake_clock.waits) == 2
    client.close()


def test_a_trigger_answered_202_queued_returns_the_queued_deploy(render):
    render.deploy_live(commit="1" * 40)
    busy = render.client.trigger_deploy(SRV, commit_id="2" * 40)
    render.emulator.faults.add(action="queued", match="POST /services/*/deploys")
    with capture_logs() as logs:
        queued = render.client.trigger_deploy(SRV, commit_id=SHA)
    assert queued.status == "queued" and queued.commit_id == SHA and queued.id != busy.id
    assert len(_deploys(render)) == 3
    assert any(e["event"] == "deploy_queued" and e["deploy_id"] == queued.id for e in logs)


def test_a_rollback_answered_then_timed_out_creates_exactly_one_rollback(render):
    old = render.deploy_live(commit="1" * 40)
    render.deploy_live(commit="2" * 40)
    render.emulator.faults.add(action="accept_then_timeout", match="POST /services/*/rollback")
    rollback = render.client.rollback(SRV, old)
    rollbacks = [d for d in _deploys(render) if d.trigger == "rollback"]
    assert [d.id for d in rollbacks] == [rollback.id] and rollback.commit_id == "1" * 40


def test_a_trigger_that_stays_unreachable_gives_up_with_a_transient_error(render):
    render.emulator.faults.add(action="status", match="POST /services/*/deploys", status=500, times=50)
    with pytest.raises(TransientProviderError, match="500 from Render"):
        render.client.trigger_deploy(SRV, commit_id=SHA)
    assert _deploys(render) == []
    assert render.counter.count("POST") == 5


def test_low_ratelimit_remaining_waits_for_the_window_instead_of_hitting_429(render):
    # The local Render, like Render, allows 10 deploy triggers per service per minute.
    for i in range(10):
        render.client.trigger_deploy(SRV, commit_id=f"{i:040x}")
    throttled = [w for w in render.clock.waits if w > 0]
    assert len(throttled) == 1 and 0 < throttled[0] <= 60
    assert render.counter.count("POST") == 10 and len(_deploys(render)) == 10  # no 429, no retry


def test_the_api_key_never_appears_in_logs_errors_or_reprs(fake_clock, render):
    render.emulator.faults.add(action="status", match="GET /services/*", status=503, times=10)
    with capture_logs() as logs, pytest.raises(TransientProviderError) as info:
        render.client.get_service(SRV)
    text = repr(logs) + str(info.value) + repr(info.value) + repr(render.client) + repr(info.value.request)
    assert API_KEY not in text
