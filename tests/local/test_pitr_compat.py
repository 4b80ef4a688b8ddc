"""The PITR dry run proves compatibility by requests, as the dump's does: the live release (its commit, from the
service target's repository) is started on the migrated PITR clone and sent the GET paths of Render's request logs
and the smoke list. A rename blocks (exit 1) naming the path and the app's error; an added column passes, proven.

The real CLI as a subprocess, the local Render on loopback (point-in-time recovery into its embedded PostgreSQL),
production in another embedded PostgreSQL; the world, the release and its pipeline come from ``test_pitr_pipeline``.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from typing import Any

import pytest
from harness import deploypipe, named, report_of
from pydantic import TypeAdapter
from test_pitr_pipeline import clones, pipeline, production_state, release, the_run, world  # noqa: F401

from deploypipe.db.compat import CompatResult
from deploypipe.emulator.telemetry import RequestRec

pytestmark = pytest.mark.e2e

#: The live release (WSGI): /health reads nothing, as most health checks; GET /notes selects notes.body.
LIVE_RELEASE = textwrap.dedent('''\
    import os, traceback, psycopg
    from wsgiref.simple_server import make_server


    def app(environ, start_response):
        status = "200 OK"
        if environ["PATH_INFO"] == "/notes":
            try:
                psycopg.connect(os.environ["DATABASE_URL"]).execute("select id, body from notes").fetchall()
            except psycopg.Error:
                traceback.print_exc()
                status = "500 Internal Server Error"
        start_response(status, [])
        return [b""]


    make_server(os.environ["HOST"], int(os.environ["PORT"]), app).serve_forever()
''')


def release_on_pitr(world: Any, release: Any, mode: str) -> tuple[int, str, dict[str, Any], list[dict]]:  # noqa: F811
    """Release with the migration's ``mode`` while the live release is a commit of the project's repository (the
    service target's repo_dir; a newer commit on top) whose Render request logs hold GET /notes three times, a POST
    and a GET /health: (exit code, live commit, the dry run's report, events)."""
    (release.root / "release.py").write_text(LIVE_RELEASE)
    git = ["git", "-C", str(release.root), "-c", "user.email=t@deploypipe.local", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "release.py"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "the live release"], check=True)
    live = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    world.render.deploy_now(release.service, live)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "the new release"], check=True)
    service_id = world.render.service(release.service).id
    for method, path in [("GET", "/notes")] * 3 + [("POST", "/notes"), ("GET", "/health")]:
        world.render.emulator.telemetry.request(RequestRec(at=time.time(), resource=service_id, method=method,
                                                           path=path, status=200, latency_ms=3.0))
    pipeline(release, mode=mode, compat=f"{sys.executable} release.py")
    result = deploypipe(release.root, "deploy", "--pipeline", "pipelines/p.yaml", "--json",
                        env=release.env(world.render))
    run_dir, events = the_run(release)
    dry = next(stage for stage in report_of(run_dir)["stages"] if stage["id"] == "dry-run")
    return result.returncode, live, dry, events


def test_a_rename_on_the_pitr_clone_is_blocked_by_the_live_releases_logged_request_naming_path_and_error(
        world, release):  # noqa: F811
    code, live, dry, events = release_on_pitr(world, release, "rename")
    assert code == 1, dry
    message = dry["error"]["message"]
    assert "the live release does not serve its requests on the migrated schema: GET /notes answered 500 3 " \
           "time(s) in a row" in message, message
    assert 'app error: psycopg.errors.UndefinedColumn: column "body" does not exist' in message, message
    assert "PITR clone" in dry["outputs"]["staging"]
    assert [(r["path"], r["attempts"]) for r in dry["outputs"]["compat"]["requests"]] == [
        ("/notes", [500] * 3), ("/health", [200]), ("/", [200])]  # logged, most frequent first; then smoke
    assert [e["ok"] for e in named(events, "dry_run_finished")] == [False]
    assert production_state(release) == ("a1", ["body", "id"], 5)  # the migration never reached production
    assert world.render.live_commit(release.service) == live and not clones(world, release)


def test_an_added_column_passes_on_the_pitr_clone_with_its_compatibility_proven(world, release):  # noqa: F811
    code, _, dry, _ = release_on_pitr(world, release, "ok")
    assert code == 0, dry
    compat = dry["outputs"]["compat"]
    assert TypeAdapter(CompatResult).validate_python(compat).proven
    assert [(r["path"], r["status_code"]) for r in compat["requests"]] == [("/notes", 200), ("/health", 200),
                                                                           ("/", 200)], compat
    assert "live release served 3 real GET path(s) on it without a 5xx; clone deleted" in dry["summary"]
    assert not dry["outputs"]["warnings"], dry["outputs"]["warnings"]
    assert production_state(release) == ("b2", ["body", "id", "priority"], 5)
    assert not clones(world, release)
