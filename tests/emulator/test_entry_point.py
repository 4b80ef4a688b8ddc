"""``deploypipe emulator`` as a real child process: key, faults file, a deploy, and a clean SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest
from helpers import service_app

from deploypipe.local.repo import LocalRepo

pytestmark = pytest.mark.e2e

APP = service_app('200, {"pid": os.getpid(), "commit": os.environ["RENDER_GIT_COMMIT"]}')
BLUEPRINT = ("services:\n"
             "  - {type: web, name: hello, runtime: python, startCommand: python app.py, healthCheckPath: /}\n")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _until(predicate, what: str, timeout_s: float = 30.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except httpx.TransportError:
            value = None
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_the_entry_point_serves_a_blueprint_applies_a_faults_file_and_stops_everything_on_sigterm(tmp_path):
    repo = LocalRepo(tmp_path / "repo")
    repo.ensure()
    commit = repo.commit_change({"app.py": APP, "render.yaml": BLUEPRINT}, "hello")
    faults = tmp_path / "faults.json"
    faults.write_text('[{"action": "status", "status": 429, "retry_after_s": 1, "match": "POST /services/*/deploys"}]')
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "deploypipe.cli", "emulator", "--port", str(port), "--blueprint",
                             str(repo.path / "render.yaml"), "--repo", str(repo.path), "--data-dir",
                             str(tmp_path / "render"), "--faults", str(faults), "--health-grace-s", "10",
                             "--health-interval-s", "0.1"],
                            env={**os.environ, "DEPLOYPIPE_EMULATOR_API_KEY": "rnd_entry"},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        api = f"http://127.0.0.1:{port}/v1"
        auth = {"Authorization": "Bearer rnd_entry"}
        services = _until(lambda: httpx.get(f"{api}/services", headers=auth).json(), "the API to answer")
        assert httpx.get(f"{api}/services").status_code == 401
        service = services[0]["service"]
        first = httpx.post(f"{api}/services/{service['id']}/deploys", json={"commitId": commit}, headers=auth)
        assert first.status_code == 429 and first.headers["Retry-After"] == "1"
        deploy = httpx.post(f"{api}/services/{service['id']}/deploys", json={"commitId": commit}, headers=auth).json()
        _until(lambda: httpx.get(f"{api}/services/{service['id']}/deploys/{deploy['id']}", headers=auth)
               .json()["status"] == "live", "the deploy to go live")
        served = httpx.get(service["serviceDetails"]["url"] + "/").json()
        assert served["commit"] == commit
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with pytest.raises(ProcessLookupError):
        for _ in range(100):
            os.kill(served["pid"], 0)
            time.sleep(0.05)
    assert b"emulator_serving" in proc.stdout.read()
