"""The same client over real HTTP on 127.0.0.1 against the local Render served by uvicorn."""

from __future__ import annotations

import random

import httpx
import pytest
from render_fixtures import API_KEY, Counter

from deploypipe.errors import AuthenticationError
from deploypipe.render import RenderClient, RetryPolicy

SRV = "srv-web0000000000000000"
SHA = "c0ffee" + "0" * 34


def test_from_env_talks_to_the_local_render_over_loopback(loopback, fake_clock):
    emulator, server = loopback
    env = {"RENDER_API_URL": server.url, "RENDER_API_KEY": API_KEY}
    with RenderClient.from_env(env, sleep=fake_clock.sleep, clock=fake_clock.time) as client:
        assert client.find_service("web").id == SRV
        emulator.faults.add(action="status", match="GET /services/*", status=429, retry_after_s=3)
        assert client.get_service(SRV).name == "web"
    assert fake_clock.waits == [3.0]


def test_a_wrong_key_over_loopback_is_an_authentication_error(loopback):
    _, server = loopback
    with RenderClient.from_env({"RENDER_API_URL": server.url, "RENDER_API_KEY": "rnd_nope"}) as client:
        with pytest.raises(AuthenticationError, match="401"):
            client.list_services()


def test_a_trigger_whose_answer_is_lost_on_a_real_socket_creates_one_deploy(loopback, fake_clock):
    emulator, server = loopback
    emulator.faults.add(action="accept_then_timeout", match="POST /services/*/deploys", latency_s=2.0)
    counter = Counter()
    http = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {API_KEY}"},
                        timeout=httpx.Timeout(5.0, read=0.3), event_hooks={"request": [counter]})
    with RenderClient(http, sleep=fake_clock.sleep, clock=fake_clock.time, wall_clock=fake_clock.time,
                      retry=RetryPolicy(rng=random.Random(1))) as client:
        deploy = client.trigger_deploy(SRV, commit_id=SHA)
    deploys = emulator.services[SRV].deploys
    assert [d.id for d in deploys] == [deploy.id]
    assert counter.count("POST") == 1


def test_a_closed_port_is_a_transient_error_that_says_the_request_was_not_sent(fake_clock):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {"RENDER_API_URL": f"http://127.0.0.1:{port}/v1", "RENDER_API_KEY": API_KEY}
    from deploypipe.errors import TransientProviderError

    with RenderClient.from_env(env, sleep=fake_clock.sleep, clock=fake_clock.time) as client:
        not_sent = "could not reach Render \\(the request was not sent\\)"
        with pytest.raises(TransientProviderError, match=not_sent) as info:
            client.get_service(SRV)
    assert info.value.sent is False and len(fake_clock.waits) == 4
