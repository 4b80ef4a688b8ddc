"""Cron jobs on the local Render: a deploy starts no run; a triggered run is a process in the live build with the
service's environment, recorded as cron_job_run_started / cron_job_run_ended with its output in the logs; a trigger
cancels the active run; schedules run on the emulator's clock."""

from __future__ import annotations

import textwrap

import pytest
from helpers import blueprint_render, wait_until

from deploypipe.emulator import Emulator, build_emulator, in_process_client
from deploypipe.emulator.blueprint import ServiceDef
from deploypipe.emulator.cronexpr import CronSchedule
from deploypipe.emulator.ids import iso
from deploypipe.errors import SpecError
from deploypipe.testing import FakeClock

KEY = "rnd_cron_tests"
BLUEPRINT = textwrap.dedent('''\
    services:
      - type: cron
        name: nightly
        runtime: python
        schedule: "0 3 * * *"
        buildCommand: echo built > built.txt
        startCommand: python job.py
        autoDeploy: false
        envVars:
          - {key: GREETING, value: hello}
''')
JOB = textwrap.dedent('''\
    import os, pathlib, sys, time
    mode = pathlib.Path("mode.txt").read_text().strip()
    print(f"{os.environ['GREETING']} from {os.environ['RENDER_SERVICE_NAME']}, built: {pathlib.Path('built.txt').exists()}", flush=True)
    if mode == "slow":
        time.sleep(60)
    if mode == "fail":
        print("RuntimeError: the nightly report could not reach the database", file=sys.stderr, flush=True)
        sys.exit(1)
''')

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def nightly(tmp_path_factory):
    commits = {mode: {"render.yaml": BLUEPRINT, "job.py": JOB, "mode.txt": mode} for mode in ("ok", "fail", "slow")}
    with blueprint_render(tmp_path_factory.mktemp("cron"), commits, key=KEY, auto_deploy_poll_s=0) as render:
        yield render.http, render.service("nightly")["id"], render.commits, render.emulator


def _deploy(http, sid: str, commit: str) -> None:
    deploy = http.post(f"/services/{sid}/deploys", json={"commitId": commit}).json()
    wait_until(lambda: http.get(f"/services/{sid}/deploys/{deploy['id']}").json()["status"] in
               ("live", "build_failed", "update_failed"), "the deploy", timeout=60)
    assert http.get(f"/services/{sid}/deploys/{deploy['id']}").json()["status"] == "live"


def _events(http, sid: str) -> list[dict]:
    rows = http.get(f"/services/{sid}/events", params={"type": ["cron_job_run_started", "cron_job_run_ended"],
                                                       "limit": 100}).json()
    return [row["event"] for row in rows]


def _ended(http, sid: str, run_id: str) -> dict:
    return wait_until(lambda: next((e for e in _events(http, sid) if e["type"] == "cron_job_run_ended"
                                    and e["details"]["cronJobRunId"] == run_id), None), f"run {run_id} to end")


def _lines(http, sid: str, emulator) -> list[str]:
    page = http.get("/logs", params={"ownerId": emulator.owner_id, "resource": sid, "type": "app", "limit": 100,
                                     "direction": "forward"}).json()
    return [entry["message"] for entry in page["logs"]]


def test_a_deploy_starts_no_run_and_a_triggered_run_is_the_live_build_with_the_services_environment(nightly):
    http, sid, commits, emulator = nightly
    _deploy(http, sid, commits["ok"])
    assert _events(http, sid) == [], "a cron job's deploy starts no run"
    run = http.post(f"/cron-jobs/{sid}/runs")
    assert run.status_code == 200 and run.json()["status"] == "pending"
    ended = _ended(http, sid, run.json()["id"])
    assert ended["details"] == {"cronJobRunId": run.json()["id"], "status": "successful"}
    assert [e["type"] for e in _events(http, sid)] == ["cron_job_run_ended", "cron_job_run_started"]
    assert "hello from nightly, built: True" in _lines(http, sid, emulator)
    details = http.get(f"/services/{sid}").json()["serviceDetails"]
    assert details["lastSuccessfulRunAt"] == ended["timestamp"] and details["schedule"] == "0 3 * * *"


def test_a_failing_run_is_unsuccessful_with_its_exit_status_and_its_error_line_in_the_logs(nightly):
    http, sid, commits, emulator = nightly
    last_success = http.get(f"/services/{sid}").json()["serviceDetails"].get("lastSuccessfulRunAt")
    _deploy(http, sid, commits["fail"])
    run = http.post(f"/cron-jobs/{sid}/runs").json()
    ended = _ended(http, sid, run["id"])
    assert ended["details"]["status"] == "unsuccessful" and ended["details"]["reason"] == {
        "evicted": False, "nonZeroExit": 1}
    lines = _lines(http, sid, emulator)
    assert "RuntimeError: the nightly report could not reach the database" in lines
    assert lines[-1] == "==> Exited with status 1"
    assert http.get(f"/services/{sid}").json()["serviceDetails"].get("lastSuccessfulRunAt") == last_success


def test_a_trigger_cancels_the_active_run_and_delete_cancels_the_next(nightly):
    http, sid, commits, emulator = nightly
    _deploy(http, sid, commits["slow"])
    first = http.post(f"/cron-jobs/{sid}/runs").json()
    wait_until(lambda: first["id"] in emulator.cron.processes, "the first run's process")
    process = emulator.cron.processes[first["id"]]
    second = http.post(f"/cron-jobs/{sid}/runs").json()
    assert _ended(http, sid, first["id"])["details"]["status"] == "canceled"
    assert process.poll() is not None, "the cancelled run's process is stopped"
    assert http.delete(f"/cron-jobs/{sid}/runs").status_code == 204
    assert _ended(http, sid, second["id"])["details"]["status"] == "canceled"
    assert [r.status for r in emulator.cron.runs[sid][-2:]] == ["canceled", "canceled"]


# -- schedules, on a fake clock (simulated runs) -------------------------------------------------------------------
START = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def test_a_schedule_starts_one_run_at_each_due_minute_once_deployed_and_none_while_one_is_active():
    clock = FakeClock(now=START)
    with Emulator(clock=clock.time) as emulator:
        service = emulator.add_service(ServiceDef(type="cron", name="tick", startCommand="run", schedule="*/10 * * * *"))
        http = in_process_client(emulator)
        clock.now += 1200
        assert _events(http, service.id) == [], "nothing to run before the first deploy"
        http.post(f"/services/{service.id}/deploys", json={"commitId": "a" * 40})
        emulator.cron.sim_run_s = 900  # longer than the schedule's period
        clock.now = START + 1800 + 5  # 00:30:05; due next at 00:40
        http.get("/services")
        clock.now = START + 2400 + 30  # 00:40:30
        started = [e for e in _events(http, service.id) if e["type"] == "cron_job_run_started"]
        assert [e["timestamp"] for e in started] == [iso(START + 2400)]
        clock.now = START + 3000 + 1  # 00:50:01: the 00:40 run is still active, so this minute is skipped
        http.get("/services")
        clock.now = START + 3600 + 1  # 01:00:01: the 00:40 run ended at 00:55
        events = _events(http, service.id)
        assert [(e["type"], e["timestamp"]) for e in reversed(events)] == [
            ("cron_job_run_started", iso(START + 2400)), ("cron_job_run_ended", iso(START + 3300)),
            ("cron_job_run_started", iso(START + 3600))]
        assert all(run.triggered_by is None for run in emulator.cron.runs[service.id])
        http.close()


@pytest.mark.parametrize("text, due", [
    ("*/10 * * * *", "2026-01-01T00:10:00Z"),
    ("0 12 * * *", "2026-01-01T12:00:00Z"),
    ("*/60 * * * MON-FRI", "2026-01-01T01:00:00Z"),  # 2026-01-01 is a Thursday
    ("5 4 * * sun", "2026-01-04T04:05:00Z"),
    ("0 0 1 * 1", "2026-01-05T00:00:00Z"),  # both day fields restricted: either matches
    ("0 0 29 2 *", "2028-02-29T00:00:00Z"),
])
def test_cron_expressions_are_due_at_the_next_matching_minute_in_utc(text, due):
    assert iso(CronSchedule.parse(text).next_after(START + 30)) == due


def test_a_cron_job_without_a_valid_schedule_is_refused_when_the_blueprint_loads(tmp_path):
    path = tmp_path / "render.yaml"
    path.write_text("services:\n  - {type: cron, name: a, startCommand: run}\n"
                    "  - {type: cron, name: b, startCommand: run, schedule: '61 * * * *'}\n")
    with pytest.raises(SpecError) as caught:
        build_emulator(blueprint=path)
    assert caught.value.message == ("service a: a cron job needs a schedule (e.g. '0 3 * * *'); service b: schedule "
                                    "'61 * * * *': minute: '61' is outside 0-59")
