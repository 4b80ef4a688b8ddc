"""RenderClient's metrics and logs: typed answers, one request per call, the caller pages, an unretried twin."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from render_fixtures import START

from deploypipe.emulator.telemetry import RequestRec
from deploypipe.errors import TransientProviderError
from deploypipe.render import LogPage, RetryPolicy, TimeSeries

SRV = "srv-web0000000000000000"


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(START + seconds, UTC)


@pytest.fixture
def traffic(render):
    """Two minutes of traffic on web: GET / answers 200, every fifth request is POST /notes answering 500."""
    for i in range(120):
        post = i % 5 == 0
        render.emulator.telemetry.request(RequestRec(
            at=START + i, resource=SRV, method="POST" if post else "GET", path="/notes" if post else "/",
            status=500 if post else 200, latency_ms=40.0 if post else 10.0, host="web.example.test",
            instance=f"{SRV}-abcde", deploy="dep-1"))
    render.clock.now = START + 300
    return render


def test_request_metrics_are_typed_series_per_status_code_from_one_request(traffic):
    series = traffic.client.http_request_metrics(SRV, start=_at(0), end=_at(120), resolution_s=60)
    assert traffic.counter.sent == ["GET /v1/metrics/http-requests"]
    assert all(isinstance(s, TimeSeries) and s.unit == "unitless" for s in series)
    by_status = {s.labels["statusCode"]: s for s in series}
    assert {code: s.total() for code, s in by_status.items()} == {"200": 96, "500": 24}
    assert by_status["500"].points == [(_at(0), 12.0), (_at(60), 12.0)]
    only_posts = traffic.client.http_request_metrics(SRV, start=_at(0), end=_at(120), resolution_s=60,
                                                     aggregate_by=None, path="/notes")
    assert [s.total() for s in only_posts] == [24]


def test_latency_metrics_give_one_series_per_quantile_in_milliseconds(traffic):
    series = traffic.client.http_latency_metrics(SRV, start=_at(0), end=_at(120), resolution_s=120,
                                                 quantile=[0.5, 0.99])
    assert [(s.labels, s.points, s.unit) for s in series] == [
        ({"quantile": "0.5"}, [(_at(0), 10.0)], "ms"), ({"quantile": "0.99"}, [(_at(0), 40.0)], "ms")]


def test_list_logs_is_one_page_per_call_and_the_caller_pages_with_the_next_times(traffic):
    service = traffic.client.get_service(SRV)
    assert service.owner_id == traffic.emulator.owner_id
    traffic.counter.sent.clear()
    pages, seen = 0, []
    start, end = _at(0), _at(300)
    while True:
        page = traffic.client.list_logs(service.owner_id, resources=[SRV], start=start, end=end, types=["request"],
                                        status_codes=["5*"], limit=10)
        pages += 1
        assert isinstance(page, LogPage) and traffic.counter.count() == pages
        seen += page.logs
        if not page.has_more:
            break
        start, end = page.next_start_time, page.next_end_time
    assert pages == 3 and len(seen) == 24 and len({e.id for e in seen}) == 24
    assert [e.timestamp for e in seen] == sorted((e.timestamp for e in seen), reverse=True)  # backward: newest first
    assert {(e.type, e.labels["method"], e.labels["path"], e.status_code) for e in seen} == {
        ("request", "POST", "/notes", 500)}


def test_a_twin_without_retries_sends_exactly_one_request_and_shares_the_http_client(traffic):
    once = traffic.client.with_retry(RetryPolicy(attempts=1))
    assert once.http is traffic.client.http and once.clock is traffic.client.clock
    traffic.emulator.faults.add(action="status", match="GET /metrics/*", status=503, times=2)
    with pytest.raises(TransientProviderError, match="503"):
        once.http_request_metrics(SRV, start=_at(0), end=_at(120), resolution_s=60)
    assert traffic.counter.sent == ["GET /v1/metrics/http-requests"] and traffic.clock.waits == []
    assert len(traffic.client.http_request_metrics(SRV, start=_at(0), end=_at(120), resolution_s=60)) == 2
    assert traffic.counter.count() == 3 and len(traffic.clock.waits) == 1  # the default client retried the 503


@pytest.mark.parametrize("call, words", [
    (lambda c: c.http_request_metrics(SRV, start=0, end=60, resolution_s=29), "at least 30"),
    (lambda c: c.http_latency_metrics(SRV, start=0, end=60, resolution_s=60, quantile=1.5), "quantile"),
    (lambda c: c.list_logs("tea-x", resources=[SRV], start=0, end=60, limit=101), "between 1 and 100"),
])
def test_arguments_render_would_refuse_are_refused_before_any_request(render, call, words):
    with pytest.raises(ValueError, match=words):
        call(render.client)
    assert render.counter.sent == []
