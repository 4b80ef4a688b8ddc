"""Real processes behind the stable URL: every request is recorded with its instance and deploy, an instance's
output becomes app logs, build output build logs; the Render client reads them back over loopback."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from deploypipe.core.polling import poll
from deploypipe.emulator import EmulatorServer, build_emulator
from deploypipe.local.repo import LocalRepo
from deploypipe.render.client import RenderClient

pytestmark = pytest.mark.e2e
WAIT_S = 30.0  # a safety bound on waiting for an event, never a timed assertion

APP = textwrap.dedent('''\
    import os, sys
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    BROKEN = {broken}
    print("booting release", os.environ["RENDER_GIT_COMMIT"][:7], flush=True)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def answer(self, status, body=b"ok"):
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            self.answer(200)

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if BROKEN:
                print("ERROR cannot save note: NameError: name 'db' is not defined", file=sys.stderr, flush=True)
                self.answer(500, b"internal error")
            else:
                self.answer(201)

        def log_message(self, *args):
            pass

    ThreadingHTTPServer((os.environ["HOST"], int(os.environ["PORT"])), Handler).serve_forever()
''')
BLUEPRINT = textwrap.dedent('''\
    services:
      - type: web
        name: notes
        runtime: python
        buildCommand: echo "installing notes"
        startCommand: python server.py
        healthCheckPath: /health
        autoDeploy: false
''')


@pytest.fixture
def notes(tmp_path):
    repo = LocalRepo(tmp_path / "repo")
    repo.ensure()

    def commit(broken: bool) -> str:
        return repo.commit_change({"server.py": APP.format(broken=broken), "render.yaml": BLUEPRINT},
                                  f"notes broken={broken}")

    good, bad = commit(False), commit(True)
    emulator = build_emulator(blueprint=repo.path / "render.yaml", repo=repo.path, data_dir=tmp_path / "render",
                              api_keys=("k-test",), health_grace_s=10, health_interval_s=0.05, auto_deploy_poll_s=0)
    server = EmulatorServer(emulator).start()
    client = RenderClient.from_env({"RENDER_API_URL": server.url, "RENDER_API_KEY": "k-test"})
    client.emulator = emulator
    yield client, client.find_service("notes"), good, bad
    client.close()
    server.stop()


def _deploy(client, service, commit):
    deploy = client.trigger_deploy(service.id, commit_id=commit)
    final = client.wait_for_deploy(service.id, deploy.id, timeout_s=60, poll_s=0.1, max_poll_s=0.3)
    assert final.status == "live", final
    return final


def test_requests_through_the_stable_url_show_up_in_metrics_and_request_logs_with_instance_and_deploy(notes):
    client, service, good, bad = notes
    started = datetime.now(UTC) - timedelta(seconds=1)
    first = _deploy(client, service, good)
    with httpx.Client(base_url=service.url, trust_env=False) as app:
        assert [app.get("/").status_code for _ in range(3)] == [200] * 3
        assert app.post("/notes", json={"body": "x"}).status_code == 201
        second = _deploy(client, service, bad)
        assert [app.post("/notes", json={"body": "y"}).status_code for _ in range(2)] == [500, 500]
    end = datetime.now(UTC) + timedelta(seconds=1)

    counts = client.http_request_metrics(service.id, start=started, end=end, resolution_s=30)
    assert {s.labels["statusCode"]: s.total() for s in counts} == {"200": 3, "201": 1, "500": 2}
    page = client.list_logs(service.owner_id, resources=[service.id], start=started, end=end, types=["request"],
                            status_codes=["5*"], direction="forward")
    assert [(e.labels["method"], e.labels["path"], e.status_code) for e in page.logs] == [("POST", "/notes", 500)] * 2
    failing_instance = page.logs[0].labels["instance"]
    assert failing_instance.startswith(service.id + "-")

    def app_lines_with_both_errors() -> list | None:  # an instance's output is piped: it may trail the answer
        lines = client.list_logs(service.owner_id, resources=[service.id], start=started, types=["app"],
                                 end=datetime.now(UTC) + timedelta(seconds=1), direction="forward").logs
        return lines if sum(e.labels.get("level") == "error" for e in lines) >= 2 else None

    app_lines = poll(app_lines_with_both_errors, timeout_s=WAIT_S, interval_s=0.02) or []
    assert f"booting release {good[:7]}" in [e.message for e in app_lines]
    errors = [e for e in app_lines if e.labels.get("level") == "error"]
    assert [e.message for e in errors] == ["ERROR cannot save note: NameError: name 'db' is not defined"] * 2
    assert {e.labels["instance"] for e in errors} == {failing_instance}
    builds = client.list_logs(service.owner_id, resources=[service.id], start=started, end=end, types=["build"],
                              text=["/^installing notes$/"]).logs
    assert len(builds) == 2
    recorded = client.emulator.telemetry.requests({service.id}, started.timestamp(), end.timestamp())
    assert [(r.method, r.status, r.deploy) for r in recorded] == [("GET", 200, first.id)] * 3 + [
        ("POST", 201, first.id), ("POST", 500, second.id), ("POST", 500, second.id)]
    assert all(r.latency_ms > 0 and r.host.startswith("127.0.0.1:") for r in recorded)


def test_a_kept_alive_client_reaches_the_new_release_with_its_first_request_after_the_deploy_reads_live(notes):
    client, service, good, bad = notes
    _deploy(client, service, good)
    old = client.emulator.runtime.instances["notes"]
    with httpx.Client(base_url=service.url, trust_env=False) as app:
        before = app.post("/notes", json={"body": "x"})
        first = before.extensions["network_stream"].get_extra_info("client_addr")
        _deploy(client, service, bad)
        after = app.post("/notes", json={"body": "y"})
        second = after.extensions["network_stream"].get_extra_info("client_addr")
    assert (before.status_code, after.status_code, first) == (201, 500, second)
    assert old.proc.wait(timeout=WAIT_S) is not None  # the old release drained, then stopped


def test_the_stable_url_records_its_own_503_before_anything_is_live(notes):
    client, service, _good, _bad = notes
    started = datetime.now(UTC) - timedelta(seconds=1)
    assert httpx.get(f"{service.url}/notes", trust_env=False).status_code == 503  # recorded before it is answered
    page = client.list_logs(service.owner_id, resources=[service.id], start=started,
                            end=datetime.now(UTC) + timedelta(seconds=1), types=["request"])
    assert [(e.labels["path"], e.status_code, e.labels.get("instance")) for e in page.logs] == [("/notes", 503, None)]
