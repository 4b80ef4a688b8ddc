"""A missing squawk binary is a warning, never a silent pass: in `deploypipe lint` (failing under --fail-on warning)
and in the db.lint stage."""

from __future__ import annotations

import io
import os
import sys

import pytest
from dbfixtures import StageRunner

from deploypipe.commands.invocation import Invocation
from deploypipe.commands.lint import lint_command
from deploypipe.db.lint import squawk_binary
from deploypipe.stages.db_checks import DbLint

MIGRATION = "CREATE TABLE notes (id bigint PRIMARY KEY);\nCREATE INDEX notes_id ON notes (id);\n"
MISSING = ("squawk is not installed, so its migration rules did not run; instead: install deploypipe with its "
           "dependencies (squawk-cli) or put squawk on PATH; `squawk: false` turns squawk off on purpose")


@pytest.fixture
def no_squawk(tmp_path, monkeypatch):
    """No squawk on PATH nor beside the Python running deploypipe (where the squawk-cli wheel puts it)."""
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.setattr(sys, "executable", str(tmp_path / "elsewhere" / "python"))
    assert squawk_binary() is None


def _lint(root, *paths: str, **options) -> tuple[int, list[str]]:
    inv = Invocation(project_dir=root, env={}, stdout=io.StringIO(), stderr=io.StringIO())
    code = lint_command(inv, list(paths), **options)
    return code, inv.out.getvalue().splitlines()


def test_squawk_is_found_beside_the_python_running_deploypipe():
    assert squawk_binary() is not None and os.access(squawk_binary() or "", os.X_OK)


def test_lint_without_squawk_prints_a_warning_line_and_fails_under_fail_on_warning(tmp_path, no_squawk):
    (tmp_path / "0001_notes.sql").write_text(MIGRATION)
    code, lines = _lint(tmp_path, "0001_notes.sql")
    assert lines == ["0001_notes.sql: warning [squawk-missing] migration 0001_notes.sql: " + MISSING,
                     "0001_notes.sql: info [migration-phase] migration 0001_notes.sql: expand",
                     "1 warning, 1 info in 1 file"]
    assert code == 0
    assert _lint(tmp_path, "0001_notes.sql", fail_on="warning")[0] == 1


def test_the_db_lint_stage_without_squawk_warns_for_each_migration_it_could_not_check(tmp_path, new_db, no_squawk):
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "0001_notes.sql").write_text(MIGRATION)
    runner = StageRunner(root=tmp_path, databases={"main": new_db("nosquawk")}, env={"PATH": "/usr/bin:/bin"})
    result = runner.run("lint", DbLint, database="main", tool="sql")
    assert result.warnings == ("warning [squawk-missing] migration 0001_notes.sql: " + MISSING,)
    assert [e["rule"] for e in runner.events if e["event"] == "lint_finding"] == ["squawk-missing"]
