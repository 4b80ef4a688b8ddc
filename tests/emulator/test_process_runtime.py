"""The local Render running real processes from a git repository, over loopback: go live, fail the way Render fails
(build, pre-deploy, health), keep the old release serving, roll back, and come back after a restart."""

from __future__ import annotations

import os
import textwrap
import time

import httpx
import pytest
from helpers import service_app

from deploypipe.emulator import EmulatorServer, build_emulator
from deploypipe.local.repo import LocalRepo
from deploypipe.render.client import RenderClient

pytestmark = pytest.mark.e2e

# healthy unless HEALTHY is False, and then only /health fails
APP = service_app('(200, {"commit": os.environ["RENDER_GIT_COMMIT"], "ok": True}) if HEALTHY or self.path != "/health" '
                  'else (500, {"commit": os.environ["RENDER_GIT_COMMIT"], "ok": False})', prelude="HEALTHY = {healthy}")
BLUEPRINT = textwrap.dedent('''\
    services:
      - type: web
        name: tiny
        runtime: python
        rootDir: app
        buildCommand: python -m py_compile server.py && python build.py
        preDeployCommand: python predeploy.py
        startCommand: python server.py
        healthCheckPath: /health
        autoDeploy: false
''')


@pytest.fixture
def tiny(tmp_path):
    repo = LocalRepo(tmp_path / "repo")
    repo.ensure()
    releases = iter(range(1, 1000))

    def commit(*, healthy=True, builds=True, predeploy_ok=True, build_script="") -> str:
        source = APP.replace("{healthy}", str(healthy)) + f"# release {next(releases)}\n" + ("" if builds else "def broken(:\n")
        predeploy = "raise SystemExit(0)\n" if predeploy_ok else "raise SystemExit('migration failed')\n"
        return repo.commit_change({"app/server.py": source, "app/predeploy.py": predeploy, "app/build.py": build_script,
                                   "render.yaml": BLUEPRINT},
                                  f"tiny healthy={healthy} builds={builds} predeploy_ok={predeploy_ok}")

    first = commit()
    emulator = build_emulator(blueprint=repo.path / "render.yaml", repo=repo.path, data_dir=tmp_path / "render",
                              api_keys=("k-test",), health_grace_s=5, health_interval_s=0.1, auto_deploy_poll_s=0.1)
    server = EmulatorServer(emulator).start()
    client = RenderClient.from_env({"RENDER_API_URL": server.url, "RENDER_API_KEY": "k-test"})
    service = client.find_service("tiny")
    yield client, service, commit, first, emulator, server
    client.close()
    server.stop()


def _deploy(client, service, commit):
    deploy = client.trigger_deploy(service.id, commit_id=commit)
    return client.wait_for_deploy(service.id, deploy.id, timeout_s=60, poll_s=0.1, max_poll_s=0.3)


def _serving(service) -> str:
    return httpx.get(service.url + "/", timeout=5).json()["commit"]


def test_good_release_goes_live_on_the_stable_url_then_failures_leave_it_serving(tiny):
    client, service, commit, first, emulator, _ = tiny
    assert _deploy(client, service, first).status == "live" and _serving(service) == first

    unhealthy = _deploy(client, service, commit(healthy=False))
    assert unhealthy.status == "update_failed" and _serving(service) == first
    assert "not healthy within 5s" in client.deploy_failure_reason(service.id, unhealthy.id)

    broken_build = _deploy(client, service, commit(builds=False))
    assert broken_build.status == "build_failed" and _serving(service) == first

    failing_predeploy = _deploy(client, service, commit(predeploy_ok=False))
    assert failing_predeploy.status == "pre_deploy_failed" and _serving(service) == first
    assert [d.status for d in client.list_deploys(service.id, max_items=10)][-1] == "live"


def test_rollback_returns_to_an_earlier_build_without_rebuilding(tiny):
    client, service, commit, first, emulator, _ = tiny
    good = _deploy(client, service, first)
    second = commit()
    newer = _deploy(client, service, second)
    assert newer.status == "live" and _serving(service) == second
    rollback = client.rollback(service.id, good.id)
    final = client.wait_for_deploy(service.id, rollback.id, timeout_s=60, poll_s=0.1, max_poll_s=0.3)
    assert final.status == "live" and final.trigger == "rollback" and _serving(service) == first
    assert client.get_service(service.id).auto_deploy is False  # an API rollback leaves autoDeploy alone
    assert client.get_deploy(service.id, good.id).status == "deactivated"
    builds = sorted(p.name for p in (emulator.runtime.data_dir / "builds").iterdir())
    assert builds == sorted(f"bld-{d.id[4:]}" for d in (good, newer))  # nothing was built for the rollback


def test_cancelling_a_deploy_mid_build_kills_the_build_and_the_queued_deploy_goes_live(tiny):
    client, service, commit, first, emulator, server = tiny
    _deploy(client, service, first)
    slow = client.trigger_deploy(service.id, commit_id=commit(
        build_script="import os, time\nopen('build.pid', 'w').write(str(os.getpid()))\ntime.sleep(60)\n"))
    pid_file = emulator.runtime.build_dir(f"bld-{slow.id[4:]}", emulator.services[service.id]) / "build.pid"
    deadline = time.monotonic() + 30
    while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    third = commit()
    queued = client.trigger_deploy(service.id, commit_id=third)
    assert queued.status == "queued"
    assert client.cancel_deploy(service.id, slow.id).status == "canceled"
    with pytest.raises(ProcessLookupError):
        for _ in range(100):
            os.kill(int(pid_file.read_text()), 0)
            time.sleep(0.05)
    final = client.wait_for_deploy(service.id, queued.id, timeout_s=60, poll_s=0.1, max_poll_s=0.3)
    assert final.status == "live" and _serving(service) == third


def test_a_commit_that_is_not_in_the_repository_is_refused_with_400(tiny):
    client, service, *_, server = tiny
    answer = httpx.post(f"{server.url}/services/{service.id}/deploys", json={"commitId": "f" * 40},
                        headers={"Authorization": "Bearer k-test"})
    body = answer.json()
    assert answer.status_code == 400 and body["id"] == "invalid_commit" and "f" * 40 in body["message"]


def test_history_and_the_live_release_survive_a_restart_of_the_local_render(tiny, tmp_path):
    client, service, commit, first, emulator, server = tiny
    live = _deploy(client, service, first)
    server.stop()
    again = build_emulator(blueprint=tmp_path / "repo" / "render.yaml", repo=tmp_path / "repo",
                           data_dir=tmp_path / "render", api_keys=("k-test",), health_grace_s=5)
    with EmulatorServer(again) as restarted:
        with RenderClient.from_env({"RENDER_API_URL": restarted.url, "RENDER_API_KEY": "k-test"}) as fresh:
            assert fresh.live_deploy(service.id).id == live.id
            assert _serving(fresh.get_service(service.id)) == first


def test_a_rollback_to_a_deploy_whose_build_has_expired_is_refused(tiny):
    client, service, commit, first, emulator, server = tiny
    emulator.runtime.keep_builds = 1
    old = _deploy(client, service, first)
    _deploy(client, service, commit())
    answer = httpx.post(f"{server.url}/services/{service.id}/rollback", json={"deployId": old.id},
                        headers={"Authorization": "Bearer k-test"})
    assert answer.status_code == 400 and "no longer available" in answer.json()["message"]
    assert not (emulator.runtime.data_dir / "builds" / f"bld-{old.id[4:]}").exists()


def test_a_commit_on_the_branch_auto_deploys_only_once_auto_deploy_is_on(tiny):
    client, service, commit, first, emulator, server = tiny
    _deploy(client, service, first)
    quiet = commit()
    time.sleep(0.5)  # several watcher polls: autoDeploy is off in the Blueprint
    assert [d.commit_id for d in client.list_deploys(service.id, max_items=10)] == [first]
    client.update_service(service.id, auto_deploy=True)
    pushed = commit()
    deadline = time.monotonic() + 30
    while (latest := client.list_deploys(service.id, max_items=1)[0]).commit_id != pushed:
        assert time.monotonic() < deadline, "the new commit was not auto-deployed"
        time.sleep(0.1)
    final = client.wait_for_deploy(service.id, latest.id, timeout_s=60, poll_s=0.1, max_poll_s=0.3)
    assert final.trigger == "new_commit" and final.status == "live" and _serving(service) == pushed
    assert quiet not in [d.commit_id for d in client.list_deploys(service.id, max_items=10)]
