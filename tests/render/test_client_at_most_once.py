"""At most one deploy per trigger or rollback when Render performs the request and the answer fails (5xx or a dropped
connection): the client looks the deploy up instead of sending again. In-process and over a real loopback socket."""

from __future__ import annotations

import random
from typing import Iterator

import pytest
from render_fixtures import API_KEY, PERFORMED_THEN_LOST, Counter, FakeClock, Render, client_by, make_client
from structlog.testing import capture_logs

from deploypipe.emulator import in_process_client
from deploypipe.render import RenderClient, RetryPolicy

SRV = "srv-web0000000000000000"
OLD, LIVE, NEW = "1" * 40, "2" * 40, "c0ffee" + "0" * 34
FAULTS = PERFORMED_THEN_LOST


@pytest.fixture(params=["in-process", "loopback"])
def world(request, render: Render, fake_clock: FakeClock) -> Iterator[tuple[Render, RenderClient, Counter]]:
    """The local Render with two live releases, and a client to it in-process or over 127.0.0.1."""
    old = render.deploy_live(commit=OLD)
    render.deploy_live(commit=LIVE)
    render.old = old
    with client_by(request.param, render, fake_clock) as (client, counter):
        yield render, client, counter


def _new_deploys(render: Render) -> list:
    return [d for d in render.service().deploys if d.commit_id not in (OLD, LIVE) or d.trigger == "rollback"]


@pytest.mark.parametrize("fault", FAULTS)
def test_a_trigger_performed_then_failed_creates_exactly_one_deploy_and_is_not_sent_again(world, fault):
    render, client, counter = world
    render.emulator.faults.add(match="POST /services/*/deploys", **fault)
    with capture_logs() as logs:
        deploy = client.trigger_deploy(SRV, commit_id=NEW)
    created = _new_deploys(render)
    assert [d.id for d in created] == [deploy.id] and deploy.commit_id == NEW
    assert counter.count("POST") == 1  # looked up, never re-sent
    assert counter.sent[1:] == [f"GET /v1/services/{SRV}/deploys"]
    events = [e["event"] for e in logs if e["event"].startswith("deploy_")]
    assert events == ["deploy_trigger_ambiguous", "deploy_found_after_ambiguous_trigger"]


@pytest.mark.parametrize("fault", FAULTS)
def test_a_rollback_performed_then_failed_creates_exactly_one_rollback_and_is_not_sent_again(world, fault):
    render, client, counter = world
    render.emulator.faults.add(match="POST /services/*/rollback", **fault)
    rollback = client.rollback(SRV, render.old)
    created = _new_deploys(render)
    assert [(d.id, d.trigger, d.commit_id) for d in created] == [(rollback.id, "rollback", OLD)]
    assert counter.count("POST") == 1


@pytest.mark.parametrize("fault", FAULTS)
def test_a_fault_that_wears_off_before_the_next_trigger_leaves_one_deploy_per_trigger(world, fault):
    render, client, counter = world
    render.emulator.faults.add(match="POST /services/*/deploys", **fault)
    first = client.trigger_deploy(SRV, commit_id=NEW)
    render.clock.now += 120
    second = client.trigger_deploy(SRV, commit_id="d" * 40)
    assert [d.id for d in _new_deploys(render)] == [first.id, second.id]
    assert counter.count("POST") == 2


def test_without_the_lookup_a_blind_resend_would_have_made_two_deploys(render: Render, fake_clock: FakeClock):
    """What the fault is for: the same request sent twice really does create two deploys."""
    render.deploy_live(commit=LIVE)
    render.emulator.faults.add(action="accept_then_status", status=503, match="POST /services/*/deploys")
    http = in_process_client(render.emulator, API_KEY)
    first = http.post(f"/services/{SRV}/deploys", json={"commitId": NEW})
    second = http.post(f"/services/{SRV}/deploys", json={"commitId": NEW})
    assert (first.status_code, second.status_code) == (503, 202)  # the retry queued a duplicate behind the first
    assert [d.commit_id for d in _new_deploys(render)] == [NEW, NEW]
    http.close()


def test_an_unretried_twin_reports_the_ambiguous_failure_after_finding_the_deploy(render: Render, fake_clock):
    render.deploy_live(commit=LIVE)
    render.emulator.faults.add(action="accept_then_drop", match="POST /services/*/deploys")
    counter = Counter()
    client = make_client(in_process_client(render.emulator, API_KEY), fake_clock, counter)
    once = client.with_retry(RetryPolicy(attempts=1, rng=random.Random(3)))
    deploy = once.trigger_deploy(SRV, commit_id=NEW)  # the lookup is not a retry: it finds the deploy
    assert [d.id for d in _new_deploys(render)] == [deploy.id] and counter.count("POST") == 1
    client.close()
