"""Real processes behind the local Render: the service's environment (fromDatabase on an embedded PostgreSQL,
generateValue, value, RENDER_*), one-off jobs against the live build, exports with pg_dump, a live instance dying
and being started again."""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path

import httpx
import psycopg
import pytest
from helpers import blueprint_render, service_app, wait_until

from deploypipe.core.embedded_pg import pg_bin
from deploypipe.local.repo import LocalRepo

pytestmark = pytest.mark.e2e

KEY = "rnd_process_tests"
APP = service_app("200, {k: os.environ.get(k) for k in SHOWN}", prelude=(
    'SHOWN = ["DATABASE_URL", "DB_HOST", "DB_PORT", "DB_USER", "DB_NAME", "SECRET", "GREETING", "RENDER",\n'
    '         "RENDER_GIT_COMMIT", "RENDER_SERVICE_NAME", "RENDER_EXTERNAL_URL"]'))
BLUEPRINT = textwrap.dedent('''\
    services:
      - type: web
        name: shop
        runtime: python
        buildCommand: echo built > built.txt
        startCommand: python server.py
        healthCheckPath: /health
        autoDeploy: false
        envVars:
          - {key: DATABASE_URL, fromDatabase: {name: shop-db, property: connectionString}}
          - {key: DB_HOST, fromDatabase: {name: shop-db, property: host}}
          - {key: DB_PORT, fromDatabase: {name: shop-db, property: port}}
          - {key: DB_USER, fromDatabase: {name: shop-db, property: user}}
          - {key: DB_NAME, fromDatabase: {name: shop-db, property: database}}
          - {key: SECRET, generateValue: true}
          - {key: GREETING, value: hello}
      - type: worker
        name: shop-worker
        runtime: python
        startCommand: python worker.py
        autoDeploy: false
    databases:
      - name: shop-db
        databaseName: shop
        user: shop_owner
''')


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    root = tmp_path_factory.mktemp("emulator-shop")
    with blueprint_render(root, {"shop": {"server.py": APP, "render.yaml": BLUEPRINT}}, key=KEY, health_grace_s=10,
                          health_interval_s=0.1) as render:
        http, service, commit = render.http, render.service("shop"), render.commits["shop"]
        deploy = http.post(f"/services/{service['id']}/deploys", json={"commitId": commit}).json()
        wait_until(lambda: http.get(f"/services/{service['id']}/deploys/{deploy['id']}").json()["status"] == "live",
                   "live")
        yield {"http": http, "service": service, "commit": commit, "emulator": render.emulator, "root": root,
               "url": service["serviceDetails"]["url"]}


def test_the_service_environment_resolves_from_database_generated_and_plain_values(shop):
    env = httpx.get(shop["url"] + "/", timeout=5).json()
    assert env["GREETING"] == "hello" and env["RENDER"] == "true" and env["RENDER_SERVICE_NAME"] == "shop"
    assert env["RENDER_GIT_COMMIT"] == shop["commit"] and env["RENDER_EXTERNAL_URL"] == shop["url"]
    assert len(env["SECRET"]) >= 32 and (env["DB_USER"], env["DB_NAME"]) == ("shop_owner", "shop")
    with psycopg.connect(env["DATABASE_URL"]) as conn:
        assert conn.execute("select current_user, current_database()").fetchone() == ("shop_owner", "shop")
    assert env["DB_HOST"] and env["DB_PORT"].isdigit()


def test_connection_info_gives_the_url_and_password_the_service_uses(shop):
    http = shop["http"]
    db = http.get("/postgres", params={"name": "shop-db"}).json()[0]["postgres"]
    info = http.get(f"/postgres/{db['id']}/connection-info").json()
    env = httpx.get(shop["url"] + "/", timeout=5).json()
    assert info["internalConnectionString"] == env["DATABASE_URL"] and info["password"] in env["DATABASE_URL"]
    assert (db["databaseName"], db["databaseUser"], db["status"]) == ("shop", "shop_owner", "available")


def test_an_export_is_a_real_pg_dump_listed_once_done(shop):
    http = shop["http"]
    db = http.get("/postgres", params={"name": "shop-db"}).json()[0]["postgres"]
    with psycopg.connect(http.get(f"/postgres/{db['id']}/connection-info").json()["externalConnectionString"]) as conn:
        conn.execute("create table if not exists orders (id int primary key)")
    answer = http.post(f"/postgres/{db['id']}/export")
    assert answer.status_code == 202 and answer.content == b""
    exports = wait_until(lambda: http.get(f"/postgres/{db['id']}/export").json(), "the export to be listed")
    dump = Path(exports[0]["url"].removeprefix("file://"))
    assert dump.is_relative_to(shop["root"] / "render" / "exports") and oct(dump.stat().st_mode & 0o777) == "0o600"
    listing = subprocess.run([pg_bin("pg_restore"), "--list", str(dump)], capture_output=True, text=True, check=True)
    assert "TABLE public orders" in listing.stdout


def test_a_job_runs_in_the_live_build_with_the_service_environment(shop):
    http, sid = shop["http"], shop["service"]["id"]
    job = http.post(f"/services/{sid}/jobs", json={
        "startCommand": "cat built.txt > job-out.txt && echo $GREETING $RENDER_GIT_COMMIT >> job-out.txt"}).json()
    done = wait_until(lambda: (j := http.get(f"/services/{sid}/jobs/{job['id']}").json())["status"] in
                 ("succeeded", "failed") and j, "the job to end")
    assert done["status"] == "succeeded" and done["startedAt"] and done["finishedAt"]
    emulator = shop["emulator"]
    live = emulator.services[sid].live()
    out = emulator.runtime.build_dir(live.build_id, emulator.services[sid]) / "job-out.txt"
    assert out.read_text() == f"built\nhello {shop['commit']}\n"
    failing = http.post(f"/services/{sid}/jobs", json={"startCommand": "exit 3"}).json()
    assert wait_until(lambda: http.get(f"/services/{sid}/jobs/{failing['id']}").json()["status"] == "failed", "failure")


def test_cancelling_a_running_job_kills_its_command(shop):
    http, sid = shop["http"], shop["service"]["id"]
    job = http.post(f"/services/{sid}/jobs", json={"startCommand": "echo $$ > job.pid; exec sleep 60"}).json()
    emulator = shop["emulator"]
    pid_file = emulator.runtime.build_dir(emulator.services[sid].live().build_id, emulator.services[sid]) / "job.pid"
    pid = int(wait_until(lambda: pid_file.exists() and pid_file.read_text().strip(), "the job to start"))
    cancelled = http.post(f"/services/{sid}/jobs/{job['id']}/cancel").json()
    assert cancelled["status"] == "canceled"

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    wait_until(gone, "the job's process to be killed", timeout=10)
    assert http.get(f"/services/{sid}/jobs/{job['id']}").json()["status"] == "canceled"


def test_a_worker_is_live_once_it_runs_and_fails_its_deploy_if_it_exits(shop):
    http = shop["http"]
    worker = http.get("/services", params={"name": "shop-worker"}).json()[0]["service"]
    assert worker["type"] == "background_worker" and "url" not in worker["serviceDetails"]
    repo = LocalRepo(shop["root"] / "repo")
    outcomes = []
    for source in ("import time\ntime.sleep(3600)\n", "raise SystemExit(4)\n"):
        commit = repo.commit_change({"worker.py": source}, "worker")
        deploy = http.post(f"/services/{worker['id']}/deploys", json={"commitId": commit}).json()
        url = f"/services/{worker['id']}/deploys/{deploy['id']}"
        outcomes.append(wait_until(lambda url=url: (s := http.get(url).json()["status"]) in ("live", "update_failed") and s,
                              "the worker deploy"))
    assert outcomes == ["live", "update_failed"]
    ended = http.get(f"/services/{worker['id']}/events", params={"type": "deploy_ended", "limit": 1}).json()[0]
    assert ended["event"]["details"]["reason"]["failure"]["nonZeroExit"] == 4


def test_a_live_instance_that_dies_is_reported_as_server_failed(shop):
    http, sid = shop["http"], shop["service"]["id"]
    instance = shop["emulator"].runtime.instances["shop"]
    instance.proc.kill()

    def failed_events():
        events = http.get(f"/services/{sid}/events", params={"type": "server_failed"}).json()
        return [row["event"] for row in events]

    event = wait_until(failed_events, "a server_failed event")[0]
    assert event["details"]["reason"]["evicted"] is False and event["details"]["instanceID"].startswith(sid + "-")
    # Render starts it again from the same build: the stable URL serves once more
    assert wait_until(lambda: httpx.get(shop["url"] + "/", timeout=5).status_code == 200, "the restarted instance")
