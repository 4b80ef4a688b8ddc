"""Faults come from a file (`--faults`) or the test API (`POST /_emulator/faults`), and wear off after N requests."""

from __future__ import annotations

import httpx
import pytest

from deploypipe.emulator import EmulatorServer, build_emulator
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
