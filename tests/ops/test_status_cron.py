"""`deploypipe status` on a cron job, against the local Render over loopback running its runs as real processes:
a live release whose last ended run was unsuccessful is FAILING with the run's own error line (exit 1), counted
from the first of its failed runs in a row; a successful last run is healthy (exit 0); no run yet says so."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from deploypipe.commands.status import StatusReport, Thresholds, show_status

pytestmark = pytest.mark.e2e

DEPLOYPIPE = str(Path(sys.executable).parent / "deploypipe")
ERROR_LINE = "RuntimeError: the nightly report could not reach the database"


def _status(local_cron, *args: str) -> subprocess.CompletedProcess[str]:
    local_cron.invocation()  # writes cron.yaml
    return subprocess.run([DEPLOYPIPE, "status", "--pipeline", "cron.yaml", *args], cwd=local_cron.project,
                          env=local_cron.env, capture_output=True, text=True, timeout=60)


def _at(value: datetime | None) -> str:
    assert value is not None
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _live(deploy) -> str:
    return f"live {deploy.id} at commit {deploy.commit_id[:7]} since {_at(deploy.finished_at)}"


def test_a_cron_job_with_no_run_since_its_release_went_live_says_so_and_is_healthy(local_cron):
    live = local_cron.deploy("fail")
    inv = local_cron.invocation()

    assert show_status(inv, Thresholds()) == 0
    lines = inv.out.getvalue().splitlines()
    assert lines[0] == f"nightly: healthy — {_live(live)}, up to date with main; no run yet"
    assert lines[2] == "  last run: none yet since the live release went live"


def test_a_cron_job_whose_last_run_exited_1_is_failing_with_the_runs_error_line_and_exits_1(local_cron):
    live = local_cron.deploy("fail")
    ended = local_cron.run()
    run_id = ended.details["cronJobRunId"]
    assert ended.details["status"] == "unsuccessful"

    result = _status(local_cron)

    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == (f"nightly: FAILING — the last run failed: run {run_id} ended unsuccessful (exit status 1) at "
                        f"{_at(ended.timestamp)}; app log: {ERROR_LINE}; {_live(live)}, up to date with main")
    assert re.fullmatch(rf"  last run: {run_id} unsuccessful \(exit status 1\), ended {_at(ended.timestamp)} after "
                        rf"\d+ s; 1 run ended since live, 1 unsuccessful in a row since {_at(ended.timestamp)}",
                        lines[2]), lines[2]

    report = StatusReport.model_validate_json(_status(local_cron, "--json").stdout)
    [nightly] = report.services
    assert (report.exit_code, report.healthy, nightly.problems, nightly.type) == (1, False, ["cron_failing"],
                                                                                  "cron_job")
    assert nightly.error_line == ERROR_LINE and nightly.cron is not None and nightly.cron.last is not None
    assert (nightly.cron.last.id, nightly.cron.last.status, nightly.cron.failing) == (run_id, "unsuccessful", 1)
    assert nightly.cron.last.started_at is not None and nightly.cron.last.started_at <= ended.timestamp


def test_a_failed_run_that_printed_no_error_line_is_named_by_its_last_line_in_the_apps_words(local_cron):
    local_cron.deploy("bare")
    ended = local_cron.run()

    report = StatusReport.model_validate_json(_status(local_cron, "--json").stdout)

    [nightly] = report.services
    assert report.exit_code == 1 and nightly.error_line == "the orders export is empty"
    assert f"ended unsuccessful (exit status 3) at {_at(ended.timestamp)}; app log: the orders export is empty; " \
        in nightly.message


def test_failed_runs_in_a_row_count_from_the_first_and_a_canceled_run_between_them_does_not_end_the_streak(
        local_cron):
    local_cron.deploy("fail")
    first = local_cron.run()
    local_cron.hold.touch()
    try:
        with local_cron.client() as client:
            service = client.find_service("nightly")
            held = client.trigger_cron_run(service.id)
            client.cancel_cron_run(service.id)
    finally:
        local_cron.hold.unlink()
    assert local_cron.ended(held.id).details["status"] == "canceled"
    last = local_cron.run()

    report = StatusReport.model_validate_json(_status(local_cron, "--json").stdout)

    [nightly] = report.services
    assert report.exit_code == 1 and nightly.cron is not None
    assert (nightly.cron.ended, nightly.cron.failing, nightly.cron.failing_since, nightly.cron.at_least) == (
        3, 2, first.timestamp, False)
    assert nightly.message.startswith(
        f"nightly: FAILING — the last 2 runs failed, since {_at(first.timestamp)}: run "
        f"{last.details['cronJobRunId']} ended unsuccessful (exit status 1) at {_at(last.timestamp)}; app log: "
        f"{ERROR_LINE}; live ")


def test_a_successful_last_run_is_healthy_and_exits_0_and_an_older_releases_failed_runs_do_not_count(local_cron):
    local_cron.deploy("fail")
    local_cron.run()
    assert _status(local_cron).returncode == 1

    live = local_cron.deploy("ok")
    waiting = _status(local_cron)
    assert waiting.returncode == 0 and waiting.stdout.splitlines()[0].endswith("; no run yet"), waiting.stdout
    ended = local_cron.run()
    assert ended.details["status"] == "successful"

    result = _status(local_cron)

    assert result.returncode == 0, result.stdout + result.stderr
    headline = result.stdout.splitlines()[0]
    assert headline.startswith(f"nightly: healthy — {_live(live)}, 1 commit / "), headline
    assert headline.endswith(f" behind main; last run {ended.details['cronJobRunId']} ended successful at "
                             f"{_at(ended.timestamp)}"), headline
