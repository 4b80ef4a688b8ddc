"""At most one cron job run per trigger: when Render starts the run and the answer is lost (5xx, a dropped
connection), the client finds the run in the cron job's events instead of POSTing again (which would cancel the
first run and start another). In-process and over a real loopback socket."""

from __future__ import annotations

from typing import Iterator

import pytest
from render_fixtures import API_KEY, PERFORMED_THEN_LOST, Counter, FakeClock, Render, client_by
from structlog.testing import capture_logs

from deploypipe.emulator import in_process_client
from deploypipe.emulator.blueprint import ServiceDef
from deploypipe.render import RenderClient

CRN = "srv-crn0000000000000000"
FAULTS = PERFORMED_THEN_LOST


@pytest.fixture(params=["in-process", "loopback"])
def world(request, render: Render, fake_clock: FakeClock) -> Iterator[tuple[Render, RenderClient, Counter]]:
    """The local Render with a live cron job whose runs last an hour, and a client in-process or over 127.0.0.1."""
    render.emulator.add_service(ServiceDef(type="cron", name="nightly", schedule="0 3 * * *"), service_id=CRN)
    render.deploy_live("nightly")
    render.emulator.cron.sim_run_s = 3600
    with client_by(request.param, render, fake_clock) as (client, counter):
        yield render, client, counter


def _runs(render: Render) -> list:
    return render.emulator.cron.runs.get(CRN, [])


@pytest.mark.parametrize("fault", FAULTS)
def test_a_run_trigger_performed_then_failed_starts_exactly_one_run_and_is_not_sent_again(world, fault):
    render, client, counter = world
    render.emulator.faults.add(match="POST /cron-jobs/*/runs", **fault)
    with capture_logs() as logs:
        run = client.trigger_cron_run(CRN)
    assert [(r.id, r.status) for r in _runs(render)] == [(run.id, "pending")]
    assert counter.count("POST") == 1  # looked up, never re-sent
    assert counter.sent[1:] == [f"GET /v1/services/{CRN}/events"]
    assert [e["event"] for e in logs if e["event"].startswith("cron_run")] == [
        "cron_run_trigger_ambiguous", "cron_run_found_after_ambiguous_trigger"]


def test_a_trigger_answered_normally_returns_the_run_and_cancel_ends_it(world):
    render, client, counter = world
    run = client.trigger_cron_run(CRN)
    assert (run.status, run.triggered_by) == ("pending", "api") and counter.count("POST") == 1
    client.cancel_cron_run(CRN)
    assert [(r.id, r.status) for r in _runs(render)] == [(run.id, "canceled")]


def test_a_run_started_before_not_before_is_not_taken_for_the_lost_one(render: Render, fake_clock: FakeClock):
    """After an ambiguous failure that did NOT start a run, an older run (before the release went live) is not
    ours: the client sends again (the failure was a 503 the emulator answered without doing the work)."""
    render.emulator.add_service(ServiceDef(type="cron", name="nightly", schedule="0 3 * * *"), service_id=CRN)
    render.deploy_live("nightly")
    render.emulator.cron.sim_run_s = 3600
    older = render.client.trigger_cron_run(CRN)
    fake_clock.now += 10
    live_at = fake_clock.now
    render.emulator.faults.add(match="POST /cron-jobs/*/runs", action="status", status=503)
    from datetime import UTC, datetime

    run = render.client.trigger_cron_run(CRN, not_before=datetime.fromtimestamp(live_at, UTC))
    assert run.id != older.id and [r.status for r in _runs(render)] == ["canceled", "pending"]


def test_without_the_lookup_a_blind_resend_would_cancel_the_first_run_and_start_a_second(render: Render):
    """What the fault is for: the same request sent twice really starts two runs (the first one cancelled)."""
    render.emulator.add_service(ServiceDef(type="cron", name="nightly", schedule="0 3 * * *"), service_id=CRN)
    render.deploy_live("nightly")
    render.emulator.cron.sim_run_s = 3600
    render.emulator.faults.add(action="accept_then_status", status=503, match="POST /cron-jobs/*/runs")
    http = in_process_client(render.emulator, API_KEY)
    first, second = http.post(f"/cron-jobs/{CRN}/runs"), http.post(f"/cron-jobs/{CRN}/runs")
    assert (first.status_code, second.status_code) == (503, 200)
    assert [r.status for r in _runs(render)] == ["canceled", "pending"]
    http.close()
