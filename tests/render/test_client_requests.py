"""RenderClient against the in-process local Render: pagination, lookups and each error class with its message."""

from __future__ import annotations

import pytest
from render_fixtures import Counter, make_client

from deploypipe.emulator import in_process_client
from deploypipe.emulator.blueprint import ServiceDef
from deploypipe.errors import (
    AuthenticationError,
    ConflictError,
    NotFoundError,
    ProviderError,
    RateLimitedError,
    TransientProviderError,
)


def _add_services(render, count: int) -> None:
    for i in range(count):
        render.emulator.add_service(ServiceDef(type="worker", name=f"svc-{i:03d}"), service_id=f"srv-{i:020d}")


def test_list_services_reads_every_page_and_stops_on_a_short_page(render):
    _add_services(render, 203)  # + web + worker = 205: pages of 100, 100, 5
    services = render.client.list_services()
    assert len(services) == 205
    assert len({s.id for s in services}) == 205
    assert render.counter.count("GET /v1/services") == 3


def test_list_services_stops_on_an_empty_page_when_the_last_page_is_full(render):
    _add_services(render, 198)  # 200 in all: pages of 100, 100, then an empty one
    assert len(render.client.list_services()) == 200
    assert render.counter.count("GET /v1/services") == 3


def test_list_deploys_follows_cursors_with_a_small_page_size_and_caps_at_max_items(render):
    ids = [render.deploy_live(commit=f"{i:040x}") for i in range(5)]
    newest_first = list(reversed(ids))
    assert [d.id for d in render.client.list_deploys("srv-web0000000000000000", limit=2)] == newest_first
    assert render.counter.count("GET /v1/services/srv-web0000000000000000/deploys") == 3
    capped = render.client.list_deploys("srv-web0000000000000000", limit=2, max_items=3)
    assert [d.id for d in capped] == newest_first[:3]


def test_list_deploys_filters_by_status_and_creation_time(render):
    first = render.deploy_live(commit="1" * 40)
    cutoff = render.clock.now
    second = render.deploy_live(commit="2" * 40)
    client = render.client
    assert [d.id for d in client.list_deploys("srv-web0000000000000000", status=["deactivated"])] == [first]
    assert [d.id for d in client.list_deploys("srv-web0000000000000000", created_after=cutoff)] == [second]


def test_find_service_by_name_by_id_and_the_service_fields(render):
    render.client.update_service("srv-web0000000000000000", auto_deploy=False)
    service = render.client.find_service("web")
    assert (service.id, service.name, service.type, service.url, service.branch) == (
        "srv-web0000000000000000", "web", "web_service", "https://web.example.test", "main")
    assert service.auto_deploy is False and service.suspended is False
    assert render.client.find_service("srv-wrk0000000000000000").name == "worker"


def test_find_service_names_the_missing_service(render):
    with pytest.raises(NotFoundError, match="no Render service named 'api' is visible to this API key"):
        render.client.find_service("api")


def test_find_service_refuses_an_ambiguous_name_and_lists_the_ids(render):
    render.emulator.add_service(ServiceDef(type="web", name="web"), service_id="srv-web1111111111111111")
    with pytest.raises(ProviderError, match="2 services are named 'web': srv-web0+, srv-web1+") as info:
        render.client.find_service("web")
    assert "give the service's id" in str(info.value)


def test_a_wrong_api_key_is_an_authentication_error_that_never_shows_the_key(fake_clock, render):
    wrong = "rnd_wrong_key_abcdef"
    client = make_client(in_process_client(render.emulator, wrong), fake_clock, Counter())
    with pytest.raises(AuthenticationError) as info:
        client.get_service("srv-web0000000000000000")
    error = info.value
    assert str(error).startswith("GET /v1/services/srv-web0000000000000000: 401: the API key is missing or invalid")
    assert "Unauthorized: missing or invalid API key (Render error id unauthorized)" in str(error)
    assert "check RENDER_API_KEY" in str(error)
    assert error.status_code == 401 and error.response.status_code == 401 and error.request.method == "GET"
    assert wrong not in str(error) and wrong not in repr(error) and wrong not in repr(client)
    assert fake_clock.waits == []  # not retried
    client.close()


def test_a_missing_deploy_is_a_not_found_error_naming_it(render):
    with pytest.raises(NotFoundError) as info:
        render.client.get_deploy("srv-web0000000000000000", "dep-nope")
    assert ("404: deploy dep-nope not found: deploy dep-nope not found for service srv-web0000000000000000"
            in str(info.value))
    assert info.value.error_id == "not_found"


def test_cancelling_a_finished_deploy_is_a_conflict_with_renders_message(render):
    deploy_id = render.deploy_live()
    with pytest.raises(ConflictError, match=f"409 conflict: deploy {deploy_id} is live; only an in-progress deploy"):
        render.client.cancel_deploy("srv-web0000000000000000", deploy_id)


def test_a_bad_request_is_a_provider_error_with_method_path_and_status(render):
    with pytest.raises(ProviderError) as info:
        render.client.rollback("srv-web0000000000000000", "")
    error = info.value
    assert type(error) is ProviderError
    assert str(error) == ("POST /v1/services/srv-web0000000000000000/rollback: 400: deployId is required "
                          "(Render error id bad_request)")
    assert error.status_code == 400


def test_persistent_5xx_is_a_transient_error_after_the_attempts_are_spent(render):
    render.emulator.faults.add(action="status", match="GET /services/*", status=503, times=10)
    with pytest.raises(TransientProviderError, match=r"503 from Render: injected fault: 503") as info:
        render.client.get_service("srv-web0000000000000000")
    assert info.value.status_code == 503
    assert render.counter.count("GET") == 5 and len(render.clock.waits) == 4


def test_persistent_429_is_a_rate_limited_error_carrying_retry_after(render):
    render.emulator.faults.add(action="status", match="GET /services/*", status=429, retry_after_s=25, times=10)
    with pytest.raises(RateLimitedError) as info:
        render.client.get_service("srv-web0000000000000000")
    assert info.value.retry_after_s == 25.0
    assert "Render asks to wait 25s" in str(info.value)
    assert render.clock.waits == [25.0, 25.0]  # a third wait would end past the 60 s deadline
