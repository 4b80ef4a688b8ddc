"""On the local default with real processes: releases judged on real traffic, and failures explained by Render's logs.

The local default sends its traffic mix (GET /, GET /notes, POST /notes, GET /flaky) to the sample app's stable
URL; the local Render records it and serves Render's metrics and logs APIs; verify.traffic judges the release on them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from local_default import released_local

from deploypipe.commands.invocation import load
from deploypipe.commands.run import run_pipeline
from deploypipe.local.repo import LocalRepo
from deploypipe.replays.engine import run_replay

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def busy():
    """A running local default with traffic, its good release live; (project, invocation, first report)."""
    with released_local("deploypipe-traffic-", DEPLOYPIPE_TRAFFIC_WINDOW_S="12") as started:
        yield started


def _replay(inv):
    return run_replay("partial-outage", env=dict(inv.env), load=lambda: load(inv),
                      run=lambda loaded: run_pipeline(inv, loaded=loaded))


def test_a_first_release_is_judged_against_the_floors_only_not_against_the_503s_before_anything_was_live(busy):
    *_, first = busy
    verdict = first.stage("traffic").outputs["verdict"]
    assert verdict["compared"] is False and verdict["figures"]["baseline_requests"] == 0, verdict["message"]
    assert verdict["message"].endswith("no baseline: judged against the floors only"), verdict["message"]


def test_a_release_that_breaks_only_post_notes_is_rolled_back_and_the_path_is_named(busy):
    _, inv, _ = busy
    result = _replay(inv)
    report = result.runs[0]
    assert result.exit_code == 3, result.summary()
    health = report.stage("verify")
    assert health.status == "succeeded"  # /health and the smoke requests stayed green
    traffic = report.stage("traffic")
    assert traffic.status == "failed"
    assert "POST /notes: " in report.message and "answered 500" in report.message, report.message
    verdict = traffic.outputs["verdict"]
    assert verdict["status"] == "fail" and verdict["worst_paths"][0]["route"] == "POST /notes"
    per_min = load(inv).params["traffic"].logs_requests_per_min  # log pages (baseline and followed pages count)
    assert verdict["metrics_requests"] <= verdict["looks"], verdict
    assert verdict["logs_requests"] <= per_min * verdict["elapsed_s"] / 60 + 1, verdict
    assert report.rollback.performed and report.rollback.verified, report.message
    assert result.unharmed, result.summary()


def test_the_same_release_without_traffic_is_deployed_with_an_inconclusive_warning_not_verified(local):
    _, inv = local  # the local default of tests that are not about traffic: no traffic runs
    assert run_pipeline(inv).exit_code == 0  # the good release first
    result = run_replay("partial-outage", env=dict(inv.env), load=lambda: load(inv),
                        run=lambda loaded: run_pipeline(inv, loaded=loaded))
    report = result.runs[0]
    assert report.exit_code == 0, report.message
    assert report.stage("traffic").warnings[0].startswith("inconclusive: ")
    assert "NOT fully verified" in report.message and "inconclusive: " in report.message
    assert "deployed and verified" not in report.message


def test_a_release_that_cannot_start_shows_the_apps_own_error_line(local):
    _, inv = local
    assert run_pipeline(inv).exit_code == 0  # the good release (and its migration) first
    repo = LocalRepo(Path(inv.env["DEPLOYPIPE_LOCAL_REPO"]))
    good = repo.head()
    app = "examples/sampleapp/app.py"
    source = (repo.path / app).read_text()
    broken = source.replace("from __future__ import annotations\n", "from __future__ import annotations\n\n"
                            "import notes_audit_helpers  # removed in the refactor\n", 1)
    assert broken != source
    repo.commit_change({app: broken}, "Use the audit helpers")
    try:
        report = run_pipeline(inv)
    finally:
        repo.reset_to(good)
    # Render never switched the web service; the worker, released with it, went live and is rolled back
    assert report.exit_code == 3 and report.rollback.verified, report.message
    assert "ended update_failed" in report.message
    assert "ModuleNotFoundError: No module named 'notes_audit_helpers'" in report.message
    [diagnostic] = report.diagnostics
    assert diagnostic.kind == "app" and diagnostic.stage == "deploy"
    assert diagnostic.headline == "ModuleNotFoundError: No module named 'notes_audit_helpers'"
    assert len(diagnostic.lines) == 30 and diagnostic.headline in [line.strip() for line in diagnostic.lines]
    assert any(line.strip().startswith('File "') for line in diagnostic.lines), diagnostic.lines  # the traceback
    written = json.loads((Path(report.run_dir) / "report.json").read_text())
    assert written["diagnostics"][0]["headline"] == diagnostic.headline
