"""A deploy trigger or rollback that Render performed but whose answer was lost (a 5xx, a dropped connection, or the
process that sent it) is looked up, never blindly sent again: one request, one deploy."""

from __future__ import annotations

import time

import pytest
from harness import GOOD, NEW, deploy_pipeline, faulty_client, run_in_process, write_pipeline


@pytest.mark.parametrize("action", ["5xx", "drop"])
def test_a_deploy_trigger_performed_then_answered_badly_creates_exactly_one_deploy(render, clock, action):
    client, transport = faulty_client(render, clock, match="POST /v1/services/*/deploys", action=action)
    service = render.service("api")
    before = len(render.deploys())
    deploy = client.trigger_deploy(service.id, commit_id=NEW)
    assert len(render.deploys()) == before + 1, [d.trigger for d in render.deploys()]
    assert deploy.id == render.deploys()[-1].id and deploy.commit_id == NEW
    assert transport.count("POST /v1/services") == 1  # found by a lookup, not sent again


@pytest.mark.parametrize("action", ["5xx", "drop"])
def test_a_rollback_performed_then_answered_badly_creates_exactly_one_rollback(render, clock, action):
    first = render.deploys()[-1]
    render.deploy_now("api", NEW)
    client, transport = faulty_client(render, clock, match="POST /v1/services/*/rollback", action=action)
    deploy = client.rollback(render.service("api").id, first.id)
    rollbacks = [d for d in render.deploys() if d.trigger == "rollback"]
    assert len(rollbacks) == 1 and deploy.id == rollbacks[0].id
    assert transport.count("POST /v1/services") == 1
    assert render.live_commit() == GOOD


def test_a_release_whose_trigger_and_rollback_both_lose_their_answers_deploys_once_and_rolls_back_once(
        tmp_path, render, clock):
    render.health.unhealthy = {NEW}
    client, transport = faulty_client(render, clock, match="POST /v1/services/*", action="5xx", times=2)
    write_pipeline(tmp_path, deploy_pipeline())
    report, _ = run_in_process(tmp_path, None, clock, render_factory=lambda: client)
    assert report.exit_code == 3, report.message
    triggers = [d.trigger for d in render.deploys()]
    assert triggers == ["manual", "api", "rollback"], triggers
    assert transport.count("POST /v1/services") == 2
    assert render.live_commit() == GOOD


def test_a_request_an_interrupted_process_sent_is_looked_up_before_it_is_sent_again(render, clock):
    client, transport = faulty_client(render, clock, match="POST /v1/nothing", action="5xx")
    service, first = render.service("api"), render.deploys()[-1]
    asked_at = time.time()
    sent = client.trigger_deploy(service.id, commit_id=NEW)  # what the killed process sent
    assert client.trigger_deploy(service.id, commit_id=NEW, requested_at=asked_at).id == sent.id
    rolled = client.rollback(service.id, first.id)
    assert client.rollback(service.id, first.id, requested_at=asked_at).id == rolled.id
    assert transport.count("POST /v1/services") == 2
    other = "c" * 40  # asked for, but the process died before sending it: nothing to find, so it is sent
    fresh = client.trigger_deploy(service.id, commit_id=other, requested_at=time.time())
    assert fresh.commit_id == other and transport.count("POST /v1/services") == 3
