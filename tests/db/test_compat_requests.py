"""The dry run proves compatibility by requests: the live release, started on the migrated copy, is sent real GET
paths; a 5xx names the path and the release's own error line (real PostgreSQL, real Alembic, a real HTTP server)."""

from __future__ import annotations

import sys

import pytest
from test_dryrun import _dry, _production

from deploypipe.db.backup import create_backup
from deploypipe.errors import StageFailed

#: /health answers without reading the table (as most health checks do); /users reads what the live code reads.
LIVE_RELEASE = '''
import os, sys, traceback, psycopg
from http.server import BaseHTTPRequestHandler, HTTPServer


CALLS = []


class Release(BaseHTTPRequestHandler):
    def do_GET(self):
        code, body = 200, b"ok"
        if self.path == "/flaky":  # fails its first call, as the sample app's GET /flaky does on a fresh start
            CALLS.append(1)
            code = 500 if len(CALLS) == 1 else 200
        if self.path == "/users":
            try:
                with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
                    conn.execute("select id, email, name from users limit 1").fetchall()
            except Exception:
                traceback.print_exc()
                sys.stderr.flush()
                code, body = 500, b"internal error"
        self.send_response(code)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


HTTPServer((os.environ["HOST"], int(os.environ["PORT"])), Release).serve_forever()
'''


@pytest.fixture
def dropping(alembic_project, new_db, tmp_path):
    """(project, production URL, backup): production at 0001; 0002 drops users.name, which the live code reads."""
    prod = _production(alembic_project, new_db, duplicates=False)
    (alembic_project.root / "release.py").write_text(LIVE_RELEASE)
    alembic_project.revision("0002", "0001", 'op.drop_column("users", "name")',
                             'op.add_column("users", sa.Column("name", sa.Text))')
    return alembic_project, prod, create_backup(prod, tmp_path / "b", run_id="r1")


COMPAT = dict(compat_command=f"{sys.executable} release.py", compat_timeout_s=20)


def test_health_alone_passes_a_migration_that_breaks_the_live_release(dropping, tmp_path):
    project, prod, backup = dropping
    result = _dry(project, prod, backup, tmp_path, **COMPAT)
    assert result.ok and result.compat.ok and result.compat.requests == []


def test_a_path_that_answers_500_on_the_migrated_copy_blocks_with_the_path_and_the_app_error(dropping, tmp_path):
    project, prod, backup = dropping
    with pytest.raises(StageFailed) as failed:
        _dry(project, prod, backup, tmp_path, compat_paths=["/", "/flaky", "/users"], **COMPAT)
    message = str(failed.value)
    assert "the live release does not serve its requests on the migrated schema: GET /users answered 500 3 time(s) " \
           "in a row" in message
    assert 'app error: psycopg.errors.UndefinedColumn: column "name" does not exist' in message
    requests = failed.value.outputs.compat.requests
    assert [(r.path, r.attempts) for r in requests] == [("/", [200]), ("/flaky", [500, 200]), ("/users", [500] * 3)]


def test_in_two_phases_the_live_release_is_checked_on_the_expanded_schema_and_the_contract_still_rehearsed(
        dropping, tmp_path):
    project, prod, backup = dropping
    result = _dry(project, prod, backup, tmp_path, compat_paths=["/users"], expand=(None,), **COMPAT)
    assert result.ok and result.compat.proven
    assert [(r.path, r.status_code) for r in result.compat.requests] == [("/users", 200)]
    assert result.run.revision_before == "0001" and result.run.revision_after == "0002"  # the contract ran too
    assert result.run.schema_changes == {"columns_removed": ["public.users.name text"]}
