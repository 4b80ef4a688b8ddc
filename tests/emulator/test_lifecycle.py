"""Deploy lifecycle of the simulated local Render on a fake clock: phases, events, queueing, cancel, rollback."""

from __future__ import annotations

import re
from datetime import datetime

import pytest

A, B, C = "a" * 40, "b" * 40, "c" * 40


def _ts(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def test_a_deploy_moves_through_each_phase_as_the_injected_clock_advances(sim):
    start = sim.clock.now
    deploy = sim.trigger(A)
    assert deploy.status_code == 201 and deploy.json()["status"] == "build_in_progress"
    seen = []
    for _ in range(7):
        seen.append(sim.deploy(deploy.json()["id"])["status"])
        sim.clock.sleep(10)
    assert seen == ["build_in_progress", "build_in_progress", "pre_deploy_in_progress", "update_in_progress",
                    "update_in_progress", "update_in_progress", "live"]
    final = sim.deploy(deploy.json()["id"])
    assert _ts(final["finishedAt"]) == start + 60 and final["trigger"] == "api" and final["commit"]["id"] == A


def test_events_read_only_at_the_end_still_carry_the_times_the_phases_ended(sim):
    start = sim.clock.now
    deploy_id = sim.trigger(A).json()["id"]
    sim.clock.sleep(600)
    events = list(reversed(sim.events()))  # the API lists newest first
    assert [(e["type"], _ts(e["timestamp"]) - start) for e in events] == [
        ("deploy_started", 0), ("build_started", 0), ("build_ended", 20), ("pre_deploy_started", 20),
        ("pre_deploy_ended", 30), ("deploy_ended", 60), ("server_available", 60)]
    ended = events[5]["details"]
    assert ended["deployId"] == deploy_id and ended["deployStatus"] == "succeeded"
    trigger = events[0]["details"]["trigger"]
    assert trigger["firstBuild"] is True and trigger["rollback"] is False
    assert all(re.fullmatch(r"evt-[0-9a-z]{20}", e["id"]) and e["serviceId"] == sim.web.id for e in events)


@pytest.mark.parametrize("phase, status, reason_key", [
    ("build", "build_failed", "buildFailed"),
    ("pre_deploy", "pre_deploy_failed", None),
    ("update", "update_failed", "failure"),
])
def test_a_failed_deploy_leaves_the_previous_deploy_live(sim, phase, status, reason_key):
    good = sim.trigger(A).json()["id"]
    sim.clock.sleep(60)
    sim.runtime.failures[B] = phase
    bad = sim.trigger(B).json()["id"]
    sim.clock.sleep(60)
    assert sim.deploy(bad)["status"] == status and sim.deploy(good)["status"] == "live"
    ended = next(e for e in sim.events(type="deploy_ended") if e["details"]["deployId"] == bad)
    assert ended["details"]["deployStatus"] == "failed"
    assert (reason_key in ended["details"]["reason"]) if reason_key else ended["details"]["reason"] == {}
    if phase == "pre_deploy":
        pre = next(e for e in sim.events(type="pre_deploy_ended") if e["details"]["deployId"] == bad)
        assert pre["details"]["preDeployStatus"] == "failed"


def test_the_live_deploy_is_deactivated_only_when_its_successor_is_live(sim):
    first = sim.trigger(A).json()["id"]
    sim.clock.sleep(60)
    second = sim.trigger(B).json()["id"]
    sim.clock.sleep(59)
    assert (sim.deploy(first)["status"], sim.deploy(second)["status"]) == ("live", "update_in_progress")
    sim.clock.sleep(1)
    assert (sim.deploy(first)["status"], sim.deploy(second)["status"]) == ("deactivated", "live")


def test_a_trigger_while_a_deploy_is_in_progress_is_queued_202_and_starts_when_the_first_ends(sim):
    first = sim.trigger(A).json()["id"]
    sim.clock.sleep(5)
    queued = sim.trigger(B)
    assert queued.status_code == 202 and queued.content == b""
    listed = sim.get(f"/services/{sim.web.id}/deploys", params={"status": "queued"}).json()
    assert [row["deploy"]["commit"]["id"] for row in listed] == [B]
    second = listed[0]["deploy"]["id"]
    sim.clock.sleep(55)
    assert sim.deploy(first)["status"] == "live" and sim.deploy(second)["status"] == "build_in_progress"
    assert _ts(sim.deploy(second)["startedAt"]) == _ts(sim.deploy(first)["finishedAt"])
    sim.clock.sleep(60)
    assert (sim.deploy(first)["status"], sim.deploy(second)["status"]) == ("deactivated", "live")


def test_deploys_of_different_services_do_not_queue_behind_each_other(sim):
    assert sim.trigger(A).status_code == 201
    assert sim.trigger(A, sim.worker).status_code == 201


def test_cancelling_an_in_progress_deploy_starts_the_queued_one_and_a_finished_one_cannot_be_cancelled(sim):
    first = sim.trigger(A).json()["id"]
    sim.trigger(B)
    cancelled = sim.post(f"/services/{sim.web.id}/deploys/{first}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "canceled"
    ended = next(e for e in sim.events(type="deploy_ended") if e["details"]["deployId"] == first)
    assert ended["details"]["deployStatus"] == "canceled"
    second = sim.get(f"/services/{sim.web.id}/deploys", params={"limit": 1}).json()[0]["deploy"]
    assert second["commit"]["id"] == B and second["status"] == "build_in_progress"
    sim.clock.sleep(60)
    again = sim.post(f"/services/{sim.web.id}/deploys/{second['id']}/cancel")
    assert again.status_code == 409 and again.json()["id"] == "conflict" and second["id"] in again.json()["message"]


def test_a_rollback_reuses_the_targets_build_without_building_and_leaves_auto_deploy_on(sim):
    good = sim.trigger(A).json()["id"]
    sim.clock.sleep(60)
    sim.trigger(B)
    sim.clock.sleep(60)
    answer = sim.post(f"/services/{sim.web.id}/rollback", json={"deployId": good})
    assert answer.status_code == 201
    rollback = answer.json()
    assert rollback["trigger"] == "rollback" and rollback["commit"]["id"] == A
    assert rollback["status"] == "pre_deploy_in_progress"  # no build phase: the build is reused
    sim.clock.sleep(40)
    assert sim.deploy(rollback["id"])["status"] == "live"
    started = next(e for e in sim.events(type="deploy_started") if e["details"]["deployId"] == rollback["id"])
    assert started["details"]["trigger"]["rollback"] is True
    assert started["details"]["trigger"]["rollbackTargetDeployId"] == good
    assert not [e for e in sim.events(type="build_started") if _ts(e["timestamp"]) >= _ts(rollback["createdAt"])]
    assert sim.get(f"/services/{sim.web.id}").json()["autoDeploy"] == "yes"
    records = {d.id: d for d in sim.emulator.services[sim.web.id].deploys}
    assert records[rollback["id"]].build_id == records[good].build_id


def test_a_rollback_to_a_deploy_that_never_went_live_is_refused(sim):
    sim.runtime.failures[A] = "build"
    failed = sim.trigger(A).json()["id"]
    sim.clock.sleep(60)
    answer = sim.post(f"/services/{sim.web.id}/rollback", json={"deployId": failed})
    assert answer.status_code == 400 and failed in answer.json()["message"]
    missing = sim.post(f"/services/{sim.web.id}/rollback", json={"deployId": "dep-" + "0" * 20})
    assert missing.status_code == 404 and "dep-" + "0" * 20 in missing.json()["message"]


def test_deploys_are_listed_newest_first_filtered_and_paged_with_the_last_items_cursor(sim):
    ids = []
    for commit in (A, B, C):
        ids.append(sim.trigger(commit).json()["id"])
        sim.clock.sleep(60)
    first_page = sim.get(f"/services/{sim.web.id}/deploys", params={"limit": 2}).json()
    assert [row["deploy"]["id"] for row in first_page] == [ids[2], ids[1]]
    rest = sim.get(f"/services/{sim.web.id}/deploys", params={"limit": 2, "cursor": first_page[-1]["cursor"]}).json()
    assert [row["deploy"]["id"] for row in rest] == [ids[0]]
    live = sim.get(f"/services/{sim.web.id}/deploys", params={"status": ["live", "build_failed"]}).json()
    assert [row["deploy"]["id"] for row in live] == [ids[2]]
    created_b = sim.deploy(ids[1])["createdAt"]
    since_b = sim.get(f"/services/{sim.web.id}/deploys", params={"createdAfter": created_b}).json()
    assert [row["deploy"]["id"] for row in since_b] == [ids[2], ids[1]]
    before_b = sim.get(f"/services/{sim.web.id}/deploys", params={"createdBefore": "2026-01-01T00:00:30+00:00"}).json()
    assert [row["deploy"]["id"] for row in before_b] == [ids[0]]


def test_services_are_filtered_by_name_and_type(sim):
    by_name = sim.get("/services", params={"name": "worker"}).json()
    assert [row["service"]["id"] for row in by_name] == [sim.worker.id]
    web = sim.get("/services", params={"type": "web_service"}).json()
    assert [row["service"]["name"] for row in web] == ["web"]
    assert web[0]["service"]["serviceDetails"]["healthCheckPath"] == "/health"


def test_auto_deploy_is_switched_by_patch(sim):
    sim.clock.sleep(5)
    answer = sim.http.patch(f"/services/{sim.web.id}", json={"autoDeploy": "no"})
    assert answer.status_code == 200 and answer.json()["autoDeploy"] == "no"
    assert answer.json()["updatedAt"] == "2026-01-01T00:00:05Z"
    assert sim.get(f"/services/{sim.web.id}").json()["autoDeploy"] == "no"
    bad = sim.http.patch(f"/services/{sim.web.id}", json={"autoDeploy": False})
    assert bad.status_code == 400 and "'yes' or 'no'" in bad.json()["message"]


def test_events_default_to_the_last_hour_as_on_render(sim):
    sim.trigger(A)
    sim.clock.sleep(2 * 3600)
    assert sim.events() == []
    assert {e["type"] for e in sim.events(startTime="2026-01-01T00:00:00Z")} >= {"deploy_started", "deploy_ended"}


def test_a_job_runs_for_its_simulated_time_and_ends_with_an_event(sim):
    sim.runtime.job_s = 30.0
    job = sim.post(f"/services/{sim.web.id}/jobs", json={"startCommand": "python manage.py check"})
    assert job.status_code == 201 and re.fullmatch(r"job-[0-9a-z]{20}", job.json()["id"])
    assert job.json()["status"] == "running"
    sim.clock.sleep(30)
    done = sim.get(f"/services/{sim.web.id}/jobs/{job.json()['id']}").json()
    assert done["status"] == "succeeded" and _ts(done["finishedAt"]) - _ts(done["startedAt"]) == 30
    assert [e["details"] for e in sim.events(type="job_run_ended")] == [{"jobId": done["id"], "status": "succeeded"}]
    missing = sim.post(f"/services/{sim.web.id}/jobs", json={})
    assert missing.status_code == 400 and "startCommand" in missing.json()["message"]


def test_a_running_job_can_be_cancelled(sim):
    sim.runtime.job_s = 300.0
    job = sim.post(f"/services/{sim.web.id}/jobs", json={"startCommand": "sleep 300"}).json()
    cancelled = sim.post(f"/services/{sim.web.id}/jobs/{job['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "canceled"
    sim.clock.sleep(600)
    assert sim.get(f"/services/{sim.web.id}/jobs/{job['id']}").json()["status"] == "canceled"


def test_ids_and_timestamps_look_like_renders(sim):
    deploy = sim.trigger(A).json()
    assert re.fullmatch(r"srv-[0-9a-z]{20}", sim.web.id) and re.fullmatch(r"dep-[0-9a-z]{20}", deploy["id"])
    assert deploy["createdAt"] == "2026-01-01T00:00:00Z"


def test_a_pushed_commit_auto_deploys_with_trigger_new_commit_unless_auto_deploy_is_off_or_it_says_skip(sim):
    pushed = sim.http.post("http://render.local/_emulator/push", json={"service": "web", "commitId": A,
                                                                       "message": "feat: x"})
    assert pushed.status_code == 201 and pushed.json()["trigger"] == "new_commit"
    skipped = sim.http.post("http://render.local/_emulator/push", json={"service": "web", "commitId": B,
                                                                        "message": "docs [skip render]"})
    assert skipped.status_code == 204
    assert [e["details"]["id"] for e in sim.events(type="commit_ignored")] == [B]
    off = sim.http.post("http://render.local/_emulator/push", json={"service": "worker", "commitId": C})
    assert off.status_code == 204 and sim.emulator.services[sim.worker.id].deploys == []


def test_an_api_rollback_leaves_auto_deploy_on_so_the_next_commit_deploys_again(sim):
    good = sim.trigger(A).json()["id"]
    sim.clock.sleep(60)
    sim.trigger(B)
    sim.clock.sleep(60)
    sim.post(f"/services/{sim.web.id}/rollback", json={"deployId": good})
    sim.clock.sleep(60)
    sim.http.post("http://render.local/_emulator/push", json={"service": "web", "commitId": C})
    sim.clock.sleep(60)
    latest = sim.get(f"/services/{sim.web.id}/deploys", params={"limit": 1}).json()[0]["deploy"]
    assert (latest["trigger"], latest["commit"]["id"], latest["status"]) == ("new_commit", C, "live")
