"""A cron job released end to end on the local Render over loopback, its runs real processes: with run_cron, a job
that exits 0 is verified by its run; one that exits 1 fails the release, which is rolled back and verified by a run
of the old build (exit 3), the failure naming the run's error line."""

from __future__ import annotations

import textwrap

import pytest
from helpers import blueprint_render, invocation

from deploypipe.commands.run import run_pipeline
from deploypipe.render.client import RenderClient

pytestmark = pytest.mark.e2e

KEY = "rnd_cron_release_e2e"
BLUEPRINT = textwrap.dedent('''\
    services:
      - type: cron
        name: nightly
        runtime: python
        schedule: "0 3 * * *"
        startCommand: python report.py
        autoDeploy: false
''')
REPORT = textwrap.dedent('''\
    import pathlib, sys
    print("loading yesterday's orders", flush=True)
    if pathlib.Path("mode.txt").read_text().strip() == "fail":
        print("RuntimeError: the nightly report could not reach the database", file=sys.stderr, flush=True)
        sys.exit(1)
    print("report sent", flush=True)
''')
PIPELINE = textwrap.dedent('''\
    version: 1
    name: cron-release
    variables:
      RENDER_API_KEY: {secret: true}
    targets:
      services:
        nightly: {name: nightly, kind: cron, repo_dir: "{repo}"}
    stages:
      - id: release
        type: render.release
        with: {services: [nightly], commit: "{commit}", run_cron: [nightly], poll_s: 0.2, timeout_s: 60,
               observe_s: 1, interval_s: 0.25, cron_run_timeout_s: 30}
''')


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("cron-release")
    commits = {mode: {"render.yaml": BLUEPRINT, "report.py": REPORT, "mode.txt": mode} for mode in ("fail", "ok")}
    with blueprint_render(root, commits, key=KEY, auto_deploy_poll_s=0) as render:
        yield root, render.repo, render.commits, render.env, render.emulator


def _release(project, commit: str):
    root, repo, _, env, _ = project
    (root / "p.yaml").write_text(PIPELINE.replace("{repo}", str(repo.path)).replace("{commit}", commit))
    return run_pipeline(invocation(root, env=env, pipeline="p.yaml", json_output=True))


def _live(project) -> str | None:
    with RenderClient.from_env(project[3]) as client:
        live = client.live_deploy(client.find_service("nightly").id)
    return live.commit_id if live else None


def test_a_cron_job_whose_run_exits_0_is_verified_by_that_run(project):
    _, _, commits, _, emulator = project
    report = _release(project, commits["ok"])
    assert report.exit_code == 0, report.message
    verified = report.stage("release").outputs["verified"]["nightly"]
    assert verified.startswith("nightly: its run triggered after it went live, run run-"), verified
    assert " ended successful; no instance failure or error line for 1s" in verified
    runs = next(iter(emulator.cron.runs.values()))
    assert [(r.status, r.commit_id, r.triggered_by) for r in runs] == [("successful", commits["ok"], "api")]
    assert _live(project) == commits["ok"]


def test_a_cron_job_whose_run_exits_1_fails_the_release_with_its_error_line_and_is_rolled_back(project):
    _, _, commits, _, emulator = project
    report = _release(project, commits["fail"])
    assert report.exit_code == 3, report.message
    assert "nightly: its run triggered after it went live, run run-" in report.message
    assert ("ended unsuccessful (exit status 1); app log: RuntimeError: the nightly report could not reach the "
            "database") in report.message, report.message
    assert report.rollback.verified is True
    summary = " ".join(item.summary for item in report.rollback.items)
    assert "nightly: back to dep-" in summary and "ended successful" in summary, summary
    assert _live(project) == commits["ok"]
    runs = next(iter(emulator.cron.runs.values()))
    assert [(r.status, r.commit_id) for r in runs[-2:]] == [("unsuccessful", commits["fail"]),
                                                             ("successful", commits["ok"])]
