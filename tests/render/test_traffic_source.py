"""verify.traffic's TrafficSource on the local Render in-process: response times from the log text, pages followed."""

from __future__ import annotations

from render_fixtures import START

from deploypipe.analysis import Window
from deploypipe.emulator.telemetry import RequestRec
from deploypipe.stages.traffic import RenderTrafficSource, response_ms

SRV = "srv-web0000000000000000"


def test_request_logs_carry_each_response_time_and_every_page_is_reached_through_next(render):
    for i in range(120):
        render.emulator.telemetry.request(RequestRec(
            at=START + i, resource=SRV, method="GET", path=f"/notes/{i}", status=500 if i % 10 == 0 else 200,
            latency_ms=float(i), host="web.example.test", instance=f"{SRV}-abcde", deploy="dep-1"))
    render.clock.now = START + 300
    source = RenderTrafficSource(render.client, SRV, render.client.get_service(SRV).owner_id)
    render.counter.sent.clear()
    window: Window | None = Window(START, START + 300)
    seen = []
    while window is not None:
        page = source.request_logs(window, 50)
        seen += page.entries
        window = page.next if page.has_more else None
    assert render.counter.count() == 3  # 50 + 50 + 20, one request each
    assert sorted(entry.ms for entry in seen) == [float(i) for i in range(120)]  # each entry once, with its time
    assert sum(entry.status == 500 for entry in seen) == 12


def test_a_log_line_without_a_response_time_has_none() -> None:
    assert response_ms("[GET]200 web.local/notes responseTimeMS=612") == 612.0
    assert response_ms("[GET]200 web.local/notes") is None
