"""The exit codes as a CI runner sees them: the status of the real `deploypipe deploy` process (1, 3, 4), with the
report on stdout (--json) saying the same."""

from __future__ import annotations

import json

import pytest
from harness import GOOD, NEW, cli_env, deploy_pipeline, deploypipe, write_pipeline

CHECK_FAILS = """\
  - id: smoke
    type: shell.run
    with: {command: "echo the smoke test failed; exit 1"}
"""


def _deploy(tmp_path, render):
    result = deploypipe(tmp_path, "deploy", "--pipeline", "pipelines/p.yaml", "--json", env=cli_env(**render.env()))
    report = json.loads(result.stdout) if result.stdout.strip() else {}
    return result, report


@pytest.mark.e2e
def test_a_check_that_fails_before_production_changed_makes_the_process_exit_1(tmp_path, render):
    write_pipeline(tmp_path, "version: 1\nname: p\ntargets:\n  services:\n    api: {name: api}\nstages:\n"
                   + CHECK_FAILS + deploy_pipeline().split("stages:\n", 1)[1])
    result, report = _deploy(tmp_path, render)
    assert result.returncode == 1, result.stderr[-2000:]
    assert report["exit_code"] == 1 and report["outcome"] == "blocked"
    assert [d.trigger for d in render.deploys()] == ["manual"]  # production untouched


@pytest.mark.e2e
def test_a_failure_after_the_deploy_rolled_back_and_verified_makes_the_process_exit_3(tmp_path, render):
    write_pipeline(tmp_path, deploy_pipeline(after=CHECK_FAILS))
    result, report = _deploy(tmp_path, render)
    assert result.returncode == 3, result.stderr[-2000:]
    assert report["exit_code"] == 3 and report["rollback"]["verified"] is True
    assert render.live_commit() == GOOD


@pytest.mark.e2e
def test_a_failed_automatic_rollback_makes_the_process_exit_4_never_3(tmp_path, render):
    render.emulator.faults.add(action="status", status=503, match="POST /services/*/rollback", times=100)
    write_pipeline(tmp_path, deploy_pipeline(after=CHECK_FAILS))
    result, report = _deploy(tmp_path, render)
    assert result.returncode == 4, result.stderr[-2000:]
    assert report["exit_code"] == 4 and report["outcome"] == "needs_human"
    assert "live now" in report["message"] and NEW[:12] in report["message"]
    assert render.live_commit() == NEW
