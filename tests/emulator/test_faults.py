"""Faults make the local Render fail the ways Render fails: error statuses, latency, dropped connections, answers
lost after the work was done, 202 Queued, failing deploys; from a file, the test API or Python; they wear off."""

from __future__ import annotations

import httpx
import pytest

from deploypipe.emulator import EmulatorServer, build_emulator
from deploypipe.emulator.app import apply_fault
from deploypipe.emulator.blueprint import ServiceDef
from deploypipe.emulator.faults import load_faults
from deploypipe.errors import SpecError


def test_faults_from_a_yaml_file_apply_to_the_next_n_matching_requests(tmp_path):
    path = tmp_path / "faults.yaml"
    path.write_text("faults:\n  - {action: status, status: 429, retry_after_s: 7, match: 'GET /services', times: 2}\n")
    emulator = build_emulator(faults=load_faults(path))
    with EmulatorServer(emulator) as server:
        headers = {"Authorization": "Bearer rnd_test_key"}
        answers = [httpx.get(server.url + "/services", headers=headers) for _ in range(3)]
    assert [a.status_code for a in answers] == [429, 429, 200]
    assert answers[0].headers["Retry-After"] == "7" and answers[0].json()["id"] == "rate_limited"


def test_faults_posted_to_the_test_api_fail_a_service_deploy_and_can_be_cleared():
    emulator = build_emulator()
    service = emulator.add_service(ServiceDef(type="web", name="api", startCommand="run"))
    with EmulatorServer(emulator) as server, httpx.Client(headers={"Authorization": "Bearer rnd_test_key"}) as http:
        root = server.url.removesuffix("/v1")
        assert http.post(root + "/_emulator/faults", json=[
            {"action": "fail_deploy", "service": "api", "phase": "build"},
            {"action": "status", "status": 503, "match": "GET /services/*"}]).status_code == 201
        assert http.get(f"{server.url}/services/{service.id}").status_code == 503
        deploy = http.post(f"{server.url}/services/{service.id}/deploys", json={}).json()
        assert http.get(f"{server.url}/services/{service.id}/deploys/{deploy['id']}").json()["status"] == "build_failed"
        http.post(root + "/_emulator/faults", json={"action": "status", "status": 500, "match": "GET /postgres"})
        assert http.delete(root + "/_emulator/faults").status_code == 204
        assert http.get(f"{server.url}/postgres").status_code == 200


def test_a_faults_file_that_is_not_a_list_is_a_clear_error(tmp_path):
    path = tmp_path / "faults.yaml"
    path.write_text("nope: 1\n")
    with pytest.raises(SpecError, match="expected a list of fault rules"):
        load_faults(path)


@pytest.mark.parametrize("status, error_id", [(500, "internal_server_error"), (502, "bad_gateway"),
                                              (503, "service_unavailable")])
def test_a_status_fault_answers_renders_error_body_then_wears_off(sim, status, error_id):
    sim.emulator.faults.add(action="status", status=status, match="POST /services/*/deploys")
    failed = sim.trigger("a" * 40)
    assert failed.status_code == status and failed.json()["id"] == error_id
    assert "Ratelimit-Remaining" in failed.headers and sim.emulator.services[sim.web.id].deploys == []
    assert sim.trigger("a" * 40).status_code == 201


def test_a_dropped_request_in_process_is_a_transport_error_and_does_nothing(sim):
    sim.emulator.faults.add(action="drop", match="POST /services/*/deploys")
    with pytest.raises(httpx.RemoteProtocolError) as info:
        sim.trigger("a" * 40)
    assert info.value.request.method == "POST"
    assert sim.emulator.services[sim.web.id].deploys == []


def test_an_accepted_request_that_times_out_in_process_did_its_work_once(sim):
    sim.emulator.faults.add(action="accept_then_timeout", match="POST /services/*/deploys")
    with pytest.raises(httpx.ReadTimeout):
        sim.trigger("a" * 40)
    assert [d.commit_id for d in sim.emulator.services[sim.web.id].deploys] == ["a" * 40]


def test_the_queued_fault_answers_a_trigger_202_without_a_body(sim):
    sim.emulator.faults.add(action="queued", match="POST /services/*/deploys")
    answer = sim.trigger("a" * 40)
    assert answer.status_code == 202 and answer.content == b""
    assert len(sim.emulator.services[sim.web.id].deploys) == 1


def test_a_fail_deploy_fault_fails_only_the_next_deploy_of_that_service_in_that_phase(sim):
    apply_fault(sim.emulator, {"action": "fail_deploy", "service": "web", "phase": "pre_deploy"})
    first = sim.trigger("a" * 40).json()["id"]
    sim.clock.sleep(60)
    second = sim.trigger("b" * 40).json()["id"]
    sim.clock.sleep(60)
    assert (sim.deploy(first)["status"], sim.deploy(second)["status"]) == ("pre_deploy_failed", "live")
    with pytest.raises(ValueError, match="no service 'nope' \\(services: web, worker\\)"):
        apply_fault(sim.emulator, {"action": "fail_deploy", "service": "nope"})


def test_an_invalid_rule_posted_to_the_test_api_is_a_400_naming_the_problem(sim):
    answer = sim.http.post("http://render.local/_emulator/faults", json={"action": "explode"})
    assert answer.status_code == 400 and "action" in answer.json()["message"]


@pytest.fixture
def served(sim):
    server = EmulatorServer(sim.emulator).start()
    http = httpx.Client(base_url=server.url, headers={"Authorization": "Bearer rnd_emulator_tests"},
                        timeout=httpx.Timeout(5.0, read=0.5))
    yield sim, server, http
    http.close()
    server.stop()


def test_a_dropped_request_over_loopback_closes_the_socket_without_an_answer(served):
    sim, server, http = served
    sim.emulator.faults.add(action="drop", match="POST /services/*/deploys")
    with pytest.raises(httpx.RemoteProtocolError):
        http.post(f"/services/{sim.web.id}/deploys", json={"commitId": "a" * 40})
    assert sim.emulator.services[sim.web.id].deploys == []
    assert http.get("/services").status_code == 200


def test_an_accepted_request_over_loopback_is_done_but_its_answer_never_arrives(served):
    sim, server, http = served
    sim.emulator.faults.add(action="accept_then_timeout", match="POST /services/*/rollback", latency_s=1.0)
    sim.emulator.faults.add(action="accept_then_timeout", match="POST /services/*/deploys", latency_s=1.0)
    with pytest.raises(httpx.ReadTimeout):
        http.post(f"/services/{sim.web.id}/deploys", json={"commitId": "a" * 40})
    assert [d.commit_id for d in sim.emulator.services[sim.web.id].deploys] == ["a" * 40]
    with httpx.Client(base_url=server.url, headers={"Authorization": "Bearer rnd_emulator_tests"}) as patient:
        deploy = sim.emulator.services[sim.web.id].deploys[0]
        sim.clock.sleep(60)
        with pytest.raises(httpx.RemoteProtocolError):  # a client waiting longer than the stall sees the socket close
            patient.post(f"/services/{sim.web.id}/rollback", json={"deployId": deploy.id})
    assert [d.trigger for d in sim.emulator.services[sim.web.id].deploys] == ["api", "rollback"]


def test_latency_over_loopback_delays_the_answer_past_a_short_read_timeout(served):
    sim, server, http = served
    sim.emulator.faults.add(action="latency", match="GET /services", latency_s=1.5)
    with pytest.raises(httpx.ReadTimeout):
        http.get("/services")
    assert http.get("/services").status_code == 200


def test_stopping_the_server_cuts_a_pending_stall_short(sim):
    server = EmulatorServer(sim.emulator).start()
    sim.emulator.faults.add(action="accept_then_timeout", match="GET /services")  # stalls 120 s by default
    with httpx.Client(base_url=server.url, headers={"Authorization": "Bearer rnd_emulator_tests"},
                      timeout=httpx.Timeout(5.0, read=0.3)) as http:
        with pytest.raises(httpx.ReadTimeout):
            http.get("/services")
    server.stop()
    assert not server.thread.is_alive()


@pytest.mark.parametrize("status", [500, 502, 503])
def test_a_trigger_performed_then_answered_5xx_created_its_deploy_yet_answers_the_error(sim, status):
    sim.emulator.faults.add(action="accept_then_status", status=status, match="POST /services/*/deploys")
    failed = sim.trigger("a" * 40)
    assert failed.status_code == status and failed.json()["message"].startswith(f"injected fault: {status} after")
    assert "Ratelimit-Remaining" in failed.headers
    assert [d.commit_id for d in sim.emulator.services[sim.web.id].deploys] == ["a" * 40]


def test_a_rollback_performed_then_dropped_in_process_did_its_work_once(sim):
    good = sim.trigger("a" * 40).json()
    sim.clock.now += 120
    sim.trigger("b" * 40)
    sim.clock.now += 120
    sim.emulator.faults.add(action="accept_then_drop", match="POST /services/*/rollback")
    with pytest.raises(httpx.RemoteProtocolError):
        sim.post(f"/services/{sim.web.id}/rollback", json={"deployId": good["id"]})
    rollbacks = [d for d in sim.emulator.services[sim.web.id].deploys if d.trigger == "rollback"]
    assert [(d.commit_id, d.rollback_of) for d in rollbacks] == [("a" * 40, good["id"])]


def test_perform_then_fail_faults_come_from_a_file_and_the_test_api_and_drop_a_real_socket(tmp_path):
    path = tmp_path / "faults.yaml"
    path.write_text("- {action: accept_then_status, status: 503, match: 'POST /services/*/deploys'}\n")
    emulator = build_emulator(faults=load_faults(path))
    service = emulator.add_service(ServiceDef(type="web", name="api", startCommand="run"))
    with EmulatorServer(emulator) as server, httpx.Client(headers={"Authorization": "Bearer rnd_test_key"}) as http:
        assert http.post(f"{server.url}/services/{service.id}/deploys", json={}).status_code == 503
        assert http.post(server.url.removesuffix("/v1") + "/_emulator/faults",
                         json={"action": "accept_then_drop", "match": "POST /services/*/deploys"}).status_code == 201
        with pytest.raises(httpx.RemoteProtocolError):
            http.post(f"{server.url}/services/{service.id}/deploys", json={})
    assert len(emulator.services[service.id].deploys) == 2
