"""`rollback --run`: undo what a run changed, from its journal; refuse without --yes when nobody can answer."""

from __future__ import annotations

import io

import pytest

from deploypipe.commands.invocation import Invocation
from deploypipe.commands.rollback import rollback
from deploypipe.errors import UsageError


def _pipeline(project, log):
    project.pipeline(f"""\
        version: 1
        name: demo
        stages:
          - id: migrate
            type: shell.run
            with: {{command: "echo migrate >> {log}", changes_production: true, compensate_command: "echo undo-migrate >> {log}"}}
          - id: deploy
            type: shell.run
            with: {{command: "echo deploy >> {log}", changes_production: true, compensate_command: "echo undo-deploy >> {log}"}}
          - id: check
            type: shell.run
            with: {{command: "echo check >> {log}"}}
        """)


def _inv(project, **kw):
    return Invocation(pipeline="pipelines/p.yaml", project_dir=project.root, env=dict(project.env), json_output=True,
                      stdout=io.StringIO(), stderr=io.StringIO(), **kw)


def test_rollback_run_undoes_the_changes_of_a_successful_run_in_reverse(project):
    log = project.root / "log"
    _pipeline(project, log)
    deployed, _ = project.run()
    assert deployed.exit_code == 0
    report = rollback(_inv(project, interactive=False), service=None, to=None, run=deployed.run_id, yes=True)
    assert report.outcome == "rollback_verified" and report.exit_code == 0
    assert log.read_text().split() == ["migrate", "deploy", "check", "undo-deploy", "undo-migrate"]
    again = rollback(_inv(project, interactive=False), service=None, to=None, run=report.run_id, yes=True)
    assert again.exit_code == 0 and "nothing to undo" in again.message


def test_rollback_run_skips_what_the_run_already_undid(project):
    log = project.root / "log"
    _pipeline(project, log)
    text = (project.root / "pipelines" / "p.yaml").read_text().replace('echo check >> ', 'exit 1; echo ')
    (project.root / "pipelines" / "p.yaml").write_text(text)
    failed, _ = project.run()
    assert failed.exit_code == 3
    report = rollback(_inv(project, interactive=False), service=None, to=None, run=failed.run_id, yes=True)
    assert "nothing to undo" in report.message
    assert log.read_text().split().count("undo-deploy") == 1


def test_rollback_refuses_without_yes_when_not_interactive(project):
    log = project.root / "log"
    _pipeline(project, log)
    deployed, _ = project.run()
    with pytest.raises(UsageError, match="refusing to undo run .* without confirmation; hint: pass --yes"):
        rollback(_inv(project, interactive=False), service=None, to=None, run=deployed.run_id, yes=False)
    assert "undo" not in log.read_text()
