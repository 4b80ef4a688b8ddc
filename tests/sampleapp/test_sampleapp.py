"""The sample app against a real embedded PostgreSQL, started with the Blueprint's own startCommand on loopback."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys

import psycopg
import pytest
from sampleapp_fixtures import APP_DIR, alembic, blueprint_service, venv_env

pytestmark = pytest.mark.e2e


def test_health_reports_database_revision_commit_and_version(migrated_app):
    response = migrated_app.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "healthy", "database": "ok", "revision": "0002", "commit": "0123abc",
                               "version": "1.0.0"}


def test_health_is_503_and_unhealthy_when_the_database_refuses_connections(start_app):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app = start_app(DATABASE_URL=f"postgresql://sampleapp:pw@127.0.0.1:{port}/sampleapp")
    response = app.get("/health")
    assert response.status_code == 503
    assert response.json() == {"status": "unhealthy", "database": "error", "revision": None, "commit": "unknown",
                               "version": "1.0.0"}
    assert app.get("/").status_code == 503
    assert app.get("/notes").json() == {"error": "database unavailable"}


def test_health_gives_up_on_a_database_that_never_answers_instead_of_hanging(start_app):
    with socket.socket() as silent:  # accepts TCP connections (kernel backlog) but never speaks PostgreSQL
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        app = start_app(DATABASE_URL=f"postgresql://sampleapp:pw@127.0.0.1:{silent.getsockname()[1]}/sampleapp")
        response = app.get("/health")  # the client allows 10 s; the app's connect timeout is 2 s
    assert response.status_code == 503
    assert response.json()["database"] == "error"


def test_health_is_unhealthy_without_database_url(start_app):
    response = start_app().get("/health")
    assert response.status_code == 503 and response.json()["status"] == "unhealthy"


def test_health_reports_no_revision_on_a_database_never_migrated(start_app, new_database):
    response = start_app(DATABASE_URL=new_database()).get("/health")
    assert response.status_code == 200
    assert response.json()["revision"] is None


def test_notes_are_added_listed_newest_first_and_counted(start_app, new_database):
    url = new_database()
    alembic(url, "upgrade", "head")
    app = start_app(DATABASE_URL=url)
    first = app.post("/notes", json={"body": "first"})
    second = app.post("/notes", json={"body": "second", "author": "ada"})
    assert first.status_code == 201 and second.status_code == 201
    assert second.json() == {"id": first.json()["id"] + 1, "body": "second", "author": "ada"}
    listed = app.get("/notes").json()
    assert [(n["body"], n["author"]) for n in listed] == [("second", "ada"), ("first", None)]
    assert all(n["created_at"] for n in listed)
    assert app.get("/").json() == {"app": "sampleapp", "version": "1.0.0", "notes": 2}
    page = app.get("/", headers={"accept": "text/html"})
    assert page.headers["content-type"].startswith("text/html") and "<p>2 notes</p>" in page.text
    with psycopg.connect(url) as conn:
        assert conn.execute("select count(*) from notes").fetchone()[0] == 2


@pytest.mark.parametrize(("kwargs", "error"), [
    ({"json": {"body": "  "}}, "body must be a non-empty string"),
    ({"json": ["not", "an", "object"]}, "body must be a non-empty string"),
    ({"json": {"body": "x", "author": 7}}, "author must be a string when given"),
    ({"content": b"{not json", "headers": {"content-type": "application/json"}}, "the request body must be JSON"),
])
def test_invalid_notes_are_rejected_with_400(migrated_app, kwargs, error):
    response = migrated_app.post("/notes", **kwargs)
    assert response.status_code == 400
    assert response.json() == {"error": error}


def test_migrations_downgrade_to_base_and_upgrade_again(new_database):
    url = new_database()
    alembic(url, "upgrade", "head")
    alembic(url, "downgrade", "base")
    with psycopg.connect(url) as conn:
        assert conn.execute("select to_regclass('notes')").fetchone()[0] is None
    alembic(url, "upgrade", "0001")
    assert alembic(url, "current").stdout.split()[0] == "0001"
    alembic(url, "upgrade", "head")
    with psycopg.connect(url) as conn:
        columns = [r[0] for r in conn.execute(
            "select column_name from information_schema.columns where table_name = 'notes' order by ordinal_position")]
    assert columns == ["id", "body", "created_at", "author"]


def test_the_blueprint_build_command_succeeds_offline_on_a_copy_of_the_app(tmp_path):
    copy = shutil.copytree(APP_DIR, tmp_path / "sampleapp", ignore=shutil.ignore_patterns("__pycache__"))
    command = blueprint_service()["buildCommand"]
    proc = subprocess.run(["bash", "-c", command], cwd=copy, env=venv_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert list(copy.glob("__pycache__/app.*.pyc"))


def test_the_blueprint_build_command_fails_on_a_syntax_error(tmp_path):
    copy = shutil.copytree(APP_DIR, tmp_path / "sampleapp", ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "app.py").write_text("def broken(:\n")
    proc = subprocess.run(["bash", "-c", blueprint_service()["buildCommand"]], cwd=copy, env=venv_env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0


def test_requirements_list_every_third_party_module_the_app_imports():
    import ast

    imported = set()
    for path in [APP_DIR / "app.py", APP_DIR / "migrations" / "env.py", *APP_DIR.glob("migrations/versions/*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module.split(".")[0])
    third_party = {name for name in imported if name not in sys.stdlib_module_names and name != "__future__"}
    required = {line.split("[")[0].split("=")[0].split(">")[0].strip().lower()
                for line in (APP_DIR / "requirements.txt").read_text().splitlines()
                if line.strip() and not line.startswith("#")}
    assert third_party <= required, third_party - required
    assert "uvicorn" in required  # the start command needs it


def test_flaky_answers_500_to_the_first_of_every_20_requests_in_every_release(migrated_app):
    statuses = [migrated_app.get("/flaky").status_code for _ in range(41)]
    assert [i for i, status in enumerate(statuses) if status == 500] == [0, 20, 40]
    assert set(statuses) == {200, 500}
