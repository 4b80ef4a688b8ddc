"""A crashing live instance on the local Render: restarted with backoff, each crash a server_failed event with the
app's own log lines; per-service build durations."""

from __future__ import annotations

import textwrap

import pytest
from helpers import blueprint_render, wait_until

from deploypipe.emulator.runtime import SimulatedRuntime
from deploypipe.emulator.state import Emulator

pytestmark = pytest.mark.e2e

KEY = "rnd_crash_tests"
BLUEPRINT = textwrap.dedent('''\
    services:
      - type: worker
        name: crasher
        runtime: python
        startCommand: python worker.py
        autoDeploy: false
''')
CRASHING = textwrap.dedent('''\
    import time
    print("worker started", flush=True)
    time.sleep(1.5)
    raise RuntimeError("queue connection lost")
''')


@pytest.fixture
def crasher(tmp_path):
    files = {"worker.py": CRASHING, "render.yaml": BLUEPRINT}
    with blueprint_render(tmp_path, {"crasher": files}, key=KEY, health_interval_s=0.1) as render:
        render.emulator.runtime.restart_backoff_s = 1.0  # then 2 s: the gaps between crashes differ by a second
        yield render.http, render.emulator, render.commits["crasher"]


def test_a_crashing_worker_is_restarted_with_backoff_and_each_crash_is_a_server_failed_event(crasher):
    http, emulator, commit = crasher
    sid = http.get("/services", params={"name": "crasher"}).json()[0]["service"]["id"]
    deploy = http.post(f"/services/{sid}/deploys", json={"commitId": commit}).json()
    assert wait_until(lambda: http.get(f"/services/{sid}/deploys/{deploy['id']}").json()["status"] in
                      ("live", "update_failed"), "the deploy", timeout=60) and \
        http.get(f"/services/{sid}/deploys/{deploy['id']}").json()["status"] == "live"

    def failures():
        rows = http.get(f"/services/{sid}/events", params={"type": "server_failed"}).json()
        return [row["event"] for row in rows] if len(rows) >= 3 else None

    events = sorted(wait_until(failures, "three crashes", timeout=60), key=lambda e: e["timestamp"])
    instances = [e["details"]["instanceID"] for e in events]
    assert len(set(instances)) == len(instances), "each crash is a new instance of the same deploy"
    assert all(e["details"]["reason"]["nonZeroExit"] == 1 for e in events)
    times = [_epoch(e["timestamp"]) for e in events]
    gaps = [later - earlier for earlier, later in zip(times, times[1:], strict=False)]
    assert gaps[1] > gaps[0], f"the wait before a restart grows: {gaps}"
    owner = http.get(f"/services/{sid}").json()["ownerId"]
    logs = http.get("/logs", params={"ownerId": owner, "resource": sid, "type": "app", "limit": 100}).json()
    lines = [entry["message"] for entry in logs["logs"]]
    assert any("RuntimeError: queue connection lost" in line for line in lines)
    assert sum("worker started" in line for line in lines) >= 3


def _epoch(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_build_durations_are_set_per_service():
    now = [1000.0]
    runtime = SimulatedRuntime(build_s=1.0, service_build_s={"slow": 20.0})
    with Emulator(runtime=runtime, clock=lambda: now[0]) as emulator:
        from deploypipe.emulator.blueprint import ServiceDef

        slow = emulator.add_service(ServiceDef(type="worker", name="slow"))
        fast = emulator.add_service(ServiceDef(type="worker", name="fast"))
        deploys = {s.name: emulator.trigger(s, commit_id="c0ffee")[0] for s in (slow, fast)}
        now[0] += 5.0
        emulator.all_services()
        assert (deploys["fast"].status, deploys["slow"].status) == ("live", "build_in_progress")
        now[0] += 16.0
        emulator.all_services()
        assert deploys["slow"].status == "live"
