"""Render's API rules in the local Render: bearer auth, error bodies naming the id, rate limits on the fake clock."""

from __future__ import annotations

import pytest

from deploypipe.emulator import in_process_client

A = "a" * 40
RATE_HEADERS = ("Ratelimit-Limit", "Ratelimit-Remaining", "Ratelimit-Reset")


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer rnd_wrong"},
                                     {"Authorization": "rnd_emulator_tests"}])
def test_a_request_without_an_accepted_bearer_key_is_401_with_renders_error_body(sim, headers):
    client = in_process_client(sim.emulator, "unused")
    client.headers.pop("Authorization")
    answer = client.get("/services", headers=headers)
    client.close()
    assert answer.status_code == 401 and set(answer.json()) == {"id", "message"}
    assert answer.json()["id"] == "unauthorized" and all(h in answer.headers for h in RATE_HEADERS)


@pytest.mark.parametrize("path", ["/services/srv-doesnotexist", "/services/srv-doesnotexist/deploys",
                                  "/postgres/dpg-doesnotexist", "/services/{web}/deploys/dep-doesnotexist",
                                  "/services/{web}/jobs/job-doesnotexist"])
def test_an_unknown_id_is_a_404_not_found_that_names_it(sim, path):
    answer = sim.get(path.format(web=sim.web.id))
    missing = path.rsplit("/", 1)[-1] if "doesnotexist" in path.rsplit("/", 1)[-1] else path.split("/")[2]
    assert answer.status_code == 404 and answer.json()["id"] == "not_found" and missing in answer.json()["message"]


def test_every_answer_carries_the_rate_limit_headers(sim):
    for answer in (sim.get("/services"), sim.trigger(A), sim.get("/services/srv-nope"), sim.get("/nowhere")):
        assert all(h in answer.headers for h in RATE_HEADERS), answer.request.url


def test_the_eleventh_trigger_of_a_service_in_a_minute_is_429_with_retry_after_until_the_window_resets(sim):
    sim.clock.now = 1_767_225_610.0  # 10 s into a minute
    answers = [sim.trigger(A) for _ in range(10)]
    assert [a.status_code for a in answers] == [201] + [202] * 9
    assert [a.headers["Ratelimit-Remaining"] for a in answers] == [str(n) for n in range(9, -1, -1)]
    limited = sim.trigger(A)
    assert limited.status_code == 429 and limited.json()["id"] == "rate_limited"
    assert limited.headers["Retry-After"] == "50" and limited.headers["Ratelimit-Limit"] == "10"
    assert sim.trigger(A, sim.worker).status_code == 201  # the limit is per service
    assert sim.get(f"/services/{sim.web.id}").status_code == 200  # and only for triggers/updates
    assert sim.http.patch(f"/services/{sim.web.id}", json={"autoDeploy": "no"}).status_code == 429
    sim.clock.sleep(50)
    assert sim.trigger(A).status_code == 202


def test_gets_share_a_budget_of_400_a_minute_per_key(sim):
    sim.clock.now = 1_767_225_600.0
    codes = [sim.get("/services").status_code for _ in range(401)]
    assert codes[:400] == [200] * 400 and codes[400] == 429
    sim.clock.sleep(60)
    assert sim.get("/services").status_code == 200


def test_malformed_requests_are_400_with_a_message_saying_what_is_wrong(sim):
    not_json = sim.post(f"/services/{sim.web.id}/deploys", content=b"{nope",
                        headers={"Content-Type": "application/json"})
    assert not_json.status_code == 400 and "not a JSON object" in not_json.json()["message"]
    bad_cache = sim.post(f"/services/{sim.web.id}/deploys", json={"clearCache": True})
    assert bad_cache.status_code == 400 and "clearCache" in bad_cache.json()["message"]
    image = sim.post(f"/services/{sim.web.id}/deploys", json={"imageUrl": "docker.io/x/y:1"})
    assert image.status_code == 400 and "image-backed" in image.json()["message"]
    big = sim.get("/services", params={"limit": 101})
    assert big.status_code == 400 and "101" in big.json()["message"]
    when = sim.get(f"/services/{sim.web.id}/deploys", params={"createdAfter": "yesterday"})
    assert when.status_code == 400 and "ISO 8601" in when.json()["message"]


def test_clear_cache_is_recorded_in_the_deploy_trigger(sim):
    sim.post(f"/services/{sim.web.id}/deploys", json={"commitId": A, "clearCache": "clear"})
    started = sim.events(type="build_started")[0]["details"]
    assert started["trigger"]["clearCache"] is True and started["trigger"]["newCommit"] == A


@pytest.mark.parametrize("method, path", [("PATCH", "/services/{web}/jobs"), ("PUT", "/services/{web}/deploys"),
                                          ("GET", "/services/{web}/nothing"), ("DELETE", "/postgres/{db}")])
def test_a_path_or_method_render_does_not_have_is_a_404_naming_it(sim, method, path):
    answer = sim.http.request(method, path.format(web=sim.web.id, db="dpg-x"))
    assert answer.status_code == 404 and answer.json()["id"] == "not_found"
