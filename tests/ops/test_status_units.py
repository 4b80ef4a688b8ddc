"""status without a Render: the distance to the branch from a real git checkout, messages from a fake client, the
watch's notify-once state machine over a mock webhook, and option parsing."""

from __future__ import annotations

import io
import json
import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from deploypipe.commands.invocation import Invocation
from deploypipe.commands.status import StatusReport, Thresholds, check_status, watch_notify
from deploypipe.commands.status_service import behind
from deploypipe.commands.status_text import render_text
from deploypipe.errors import UsageError
from deploypipe.render.models import Deploy, Service, ServiceEvent
from deploypipe.render.observability import LogEntry, LogPage

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def git(repo: Path, *args: str, hours_ago: float = 0) -> str:
    stamp = f"@{int(NOW.timestamp() - hours_ago * 3600)} +0000"
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t.invalid", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t.invalid", "GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp}
    return subprocess.run(["git", "-C", str(repo), *args], env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    for index, hours in enumerate((10, 5, 3, 1)):
        (path / f"f{index}").write_text(str(index))
        git(path, "add", "-A")
        git(path, "commit", "-q", "-m", f"c{index}", hours_ago=hours)
    return path


def test_behind_counts_the_commits_on_the_branch_and_dates_the_oldest_missing_one(repo):
    live = git(repo, "rev-parse", "HEAD~3")
    gap = behind(repo, live, "main", NOW)
    assert (gap.ref, gap.commits, gap.hours, gap.oldest_missing_at, gap.note) == (
        "main", 3, 5.0, "2026-11-30T07:00:00Z", "")
    assert behind(repo, git(repo, "rev-parse", "HEAD"), "main", NOW).commits == 0


def test_behind_prefers_origin_branch_over_the_local_branch(repo, tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    git(clone, "reset", "-q", "--hard", "HEAD~2")  # the local branch is stale; origin/main knows the head
    gap = behind(clone, git(clone, "rev-parse", "HEAD"), "main", NOW)
    assert (gap.ref, gap.commits) == ("origin/main", 2)


def test_behind_says_so_when_the_checkout_does_not_know_the_commit_or_the_branch(repo, tmp_path):
    unknown = behind(repo, "0123456789abcdef0123456789abcdef01234567", "main", NOW)
    assert unknown.commits is None
    assert unknown.note == f"the checkout at {repo} does not know the live commit 0123456 (git fetch)"
    assert behind(repo, "0123456", "release", NOW).note == (f"the checkout at {repo} does not know branch release "
                                                             "(git fetch origin release)")
    assert behind(tmp_path, "0123456", "main", NOW).note == f"{tmp_path} is not a git checkout (set repo_dir)"
    assert behind(repo, None, "main", NOW).note == "nothing is live"


class FakeRender:
    """What status asks of the Render client, answered from a list of deploys (newest first)."""

    def __init__(self, deploys: list[Deploy], branch: str = "main"):
        self.deploys = deploys
        self.branch = branch

    def find_service(self, name_or_id: str) -> Service:
        return Service(id="srv-1", name=name_or_id, auto_deploy=True, branch=self.branch)

    def list_deploys(self, service_id: str, max_items: int | None = None, **_: object) -> list[Deploy]:
        return self.deploys[:max_items]

    def live_deploy(self, service_id: str) -> Deploy | None:
        return next((d for d in self.deploys if d.status == "live"), None)

    def list_events(self, service_id: str, **_: object) -> list[object]:
        return []


def _deploy(number: int, status: str, commit: str = "a" * 40) -> Deploy:
    stamp = datetime(2026, 11, 30, number, 16, tzinfo=UTC)
    return Deploy(id=f"dep-{number}", status=status, trigger="api", commit_id=commit, created_at=stamp,
                  finished_at=stamp)


def _invocation(tmp_path: Path, repo: Path, deploys: list[Deploy]) -> Invocation:
    (tmp_path / "p.yaml").write_text(f'version: 1\nname: p\ntargets:\n  services:\n    web: {{name: app, repo_dir: '
                                     f'"{repo}"}}\nstages:\n  - id: pre\n    type: render.preflight\n')
    return Invocation(pipeline="p.yaml", project_dir=tmp_path, env={}, stdout=io.StringIO(), stderr=io.StringIO(),
                      render_factory=lambda: FakeRender(deploys))


def test_a_frozen_service_message_names_every_failed_deploy_the_live_one_and_the_distance(tmp_path, repo):
    live = git(repo, "rev-parse", "HEAD~3")
    deploys = [_deploy(9, "update_in_progress"), _deploy(8, "build_failed"), _deploy(7, "update_failed"),
               _deploy(6, "pre_deploy_failed"), _deploy(5, "live", live), _deploy(4, "build_failed")]
    report = check_status(_invocation(tmp_path, repo, deploys), Thresholds(failed=3), now=NOW)
    [web] = report.services
    assert web.message == ("web: FROZEN — the last 3 deploys failed (dep-8 build_failed, dep-7 update_failed, dep-6 "
                           f"pre_deploy_failed); live dep-5 at commit {live[:7]} since 2026-11-30 05:16 UTC, 3 commits "
                           "/ 5 h behind main")
    assert web.in_progress is not None and web.in_progress.id == "dep-9"
    text = render_text(report).splitlines()
    assert text[1] == "  service app (srv-1), branch main, auto-deploy on"
    assert text[2] == f"  in progress: dep-9 update_in_progress at {'a' * 7} since 2026-11-30 09:16 UTC"
    assert text[4] == f"  dep-8  build_failed           {'a' * 7}  2026-11-30 08:16 UTC  api"
    assert (report.exit_code, report.healthy) == (1, False)
    assert check_status(_invocation(tmp_path, repo, deploys), Thresholds(failed=4), now=NOW).exit_code == 0


def test_the_fingerprint_names_the_problem_not_its_size(tmp_path, repo):
    live = git(repo, "rev-parse", "HEAD")
    two = [_deploy(8, "build_failed"), _deploy(7, "build_failed"), _deploy(5, "live", live)]
    three = [_deploy(9, "build_failed"), *two]
    first = check_status(_invocation(tmp_path, repo, two), Thresholds(), now=NOW)
    grown = check_status(_invocation(tmp_path, repo, three), Thresholds(), now=NOW)
    other = check_status(_invocation(tmp_path, repo, [_deploy(9, "build_failed"), _deploy(8, "build_failed"),
                                                      _deploy(6, "live", live)]), Thresholds(), now=NOW)
    assert first.fingerprint and first.fingerprint == grown.fingerprint != other.fingerprint
    assert check_status(_invocation(tmp_path, repo, [_deploy(5, "live", live)]), Thresholds(),
                        now=NOW).fingerprint == ""


class CronRender(FakeRender):
    """A cron job whose ``runs`` runs since it went live all ended unsuccessful, one a minute (newest first)."""

    def __init__(self, deploys: list[Deploy], runs: int):
        super().__init__(deploys)
        self.runs = runs

    def find_service(self, name_or_id: str) -> Service:
        return Service(id="srv-1", name=name_or_id, type="cron_job", owner_id="tea-1", branch=self.branch)

    def list_events(self, service_id: str, *, types: list[str], max_items: int | None = None,
                    **_: object) -> list[ServiceEvent]:
        kind = "cron_job_run_ended" if "cron_job_run_ended" in types else "cron_job_run_started"
        return [ServiceEvent(id=f"evt-{i}", type=kind, timestamp=NOW - timedelta(minutes=i), details={
            "cronJobRunId": f"run-{i}", "status": "unsuccessful", "reason": {"nonZeroExit": 1}})
            for i in range(self.runs)][:max_items]

    def list_logs(self, owner_id: str, **_: object) -> LogPage:
        return LogPage(logs=[LogEntry(id="1", timestamp=NOW, message="RuntimeError: no database", labels={})],
                       has_more=False, next_start_time=NOW, next_end_time=NOW)


def test_a_failure_streak_as_long_as_the_events_render_listed_is_at_least_that_long(tmp_path, repo):
    live = git(repo, "rev-parse", "HEAD")
    deploys = [Deploy(id="dep-1", status="live", commit_id=live, created_at=NOW - timedelta(days=1),
                      finished_at=NOW - timedelta(days=1))]
    said = {}
    for runs in (99, 100):
        inv = _invocation(tmp_path, repo, deploys)
        inv.render_factory = lambda runs=runs: CronRender(deploys, runs)
        [web] = check_status(inv, Thresholds(), now=NOW).services
        assert web.cron is not None and web.cron.failing == runs and web.problems == ["cron_failing"]
        said[runs] = (web.cron.at_least, web.message)
    assert said[99][0] is False and said[99][1].startswith("web: FAILING — the last 99 runs failed, for 2 h since "
                                                            "2026-11-30 10:22 UTC: run run-0 ended unsuccessful")
    assert said[100][0] is True and said[100][1].startswith("web: FAILING — the last at least 100 runs failed, ")
    assert "; app log: RuntimeError: no database; live dep-1 " in said[100][1]


class Webhook:
    def __init__(self, statuses: list[int] | None = None):
        self.bodies: list[dict] = []
        self.statuses = list(statuses or [])

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.bodies.append(json.loads(request.content))
        return httpx.Response(self.statuses.pop(0) if self.statuses else 200)


def _report(fingerprint: str) -> StatusReport:
    return StatusReport.model_validate({
        "pipeline": "p", "checked_at": "2026-11-30T12:00:00Z", "healthy": not fingerprint,
        "exit_code": 1 if fingerprint else 0, "fingerprint": fingerprint,
        "services": [{"key": "web", "name": "app", "service_id": "srv-1", "problems": ["failed_deploys"] * bool(
            fingerprint), "message": "web: FROZEN — x" if fingerprint else "web: healthy — y"}]})


def test_the_watch_notifies_a_problem_once_a_new_problem_once_and_the_recovery_once(tmp_path):
    hook = Webhook()
    inv = Invocation(project_dir=tmp_path, env={"HOOK": "https://hooks.example/T/secret"},
                     http_factory=lambda: httpx.Client(transport=httpx.MockTransport(hook)), sleep=lambda s: None)
    state = tmp_path / "state" / "watch.json"
    said = [watch_notify(inv, _report(fp), url_env="HOOK", state=state) for fp in ("", "aa", "aa", "bb", "", "")]
    assert said == ["unchanged: healthy", "sent: problem", "unchanged: already notified", "sent: problem",
                    "sent: recovered", "unchanged: healthy"]
    assert [(b["event"], b["text"]) for b in hook.bodies] == [
        ("problem", "deploypipe p: PRODUCTION FROZEN\nweb: FROZEN — x"),
        ("problem", "deploypipe p: PRODUCTION FROZEN\nweb: FROZEN — x"),
        ("recovered", "deploypipe p: RECOVERED\nweb: healthy — y")]
    assert json.loads(state.read_text())["fingerprint"] == ""


def test_an_undelivered_notification_is_not_remembered_so_the_next_run_tries_again(tmp_path):
    hook = Webhook([500, 502, 503, 404])
    waits: list[float] = []
    inv = Invocation(project_dir=tmp_path, env={"HOOK": "https://hooks.example/T/secret"},
                     http_factory=lambda: httpx.Client(transport=httpx.MockTransport(hook)), sleep=waits.append)
    state = tmp_path / "watch.json"
    assert watch_notify(inv, _report("aa"), url_env="HOOK", state=state) == "not sent: HTTP 503 after 3 attempts"
    assert len(hook.bodies) == 3 and len(waits) == 2 and not state.exists()
    assert watch_notify(inv, _report("aa"), url_env="HOOK", state=state) == "not sent: HTTP 404"
    assert watch_notify(inv, _report("aa"), url_env="HOOK", state=state) == "sent: problem"
    assert watch_notify(inv, _report("aa"), url_env="HOOK", state=state) == "unchanged: already notified"
    assert watch_notify(inv, _report("aa"), url_env="MISSING", state=tmp_path / "other.json") == \
        "not sent: MISSING is not set"


def test_slack_gets_only_text(tmp_path):
    hook = Webhook()
    inv = Invocation(project_dir=tmp_path, env={"HOOK": "https://hooks.example/x"},
                     http_factory=lambda: httpx.Client(transport=httpx.MockTransport(hook)))
    watch_notify(inv, _report("aa"), url_env="HOOK", state=tmp_path / "s.json", slack=True)
    assert hook.bodies == [{"text": "deploypipe p: PRODUCTION FROZEN\nweb: FROZEN — x"}]


@pytest.mark.parametrize("args, message", [
    (("0", None, None, None), "status: --failed 0: expected a whole number >= 1"),
    (("x", None, None, None), "status: --failed x: expected a whole number >= 1"),
    ((None, "-1", None, None), "status: --max-behind-commits -1: expected a whole number >= 0"),
    ((None, None, "soon", None), "status: --max-behind-hours soon: expected a number >= 0"),
])
def test_bad_thresholds_are_usage_errors(args, message):
    with pytest.raises(UsageError) as caught:
        Thresholds.parse(*args)
    assert caught.value.render() == message


def test_thresholds_parse_numbers_and_keep_defaults():
    assert Thresholds.parse() == Thresholds(failed=2, max_behind_commits=None, max_behind_hours=None, history=10)
    assert Thresholds.parse("5", "3", "1.5", "20") == Thresholds(5, 3, 1.5, 20)


def test_status_without_an_api_key_exits_2_with_one_line(tmp_path, repo):
    from deploypipe.commands.status import show_status

    inv = _invocation(tmp_path, repo, [])
    inv.render_factory = None
    assert show_status(inv, Thresholds()) == 2
    assert inv.err.getvalue().startswith("deploypipe: status: Render could not be asked: Render API client: "
                                         "RENDER_API_KEY is not set")
    assert inv.out.getvalue() == "" and not (tmp_path / ".deploypipe").exists()


def test_an_unreachable_webhook_is_reported_without_its_secret_url(tmp_path):
    url = "https://hooks.example/T/s3cret"

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot connect to {url}", request=request)

    inv = Invocation(project_dir=tmp_path, env={"HOOK": url}, sleep=lambda s: None,
                     http_factory=lambda: httpx.Client(transport=httpx.MockTransport(refuse)))
    said = watch_notify(inv, _report("aa"), url_env="HOOK", state=tmp_path / "s.json")
    assert said == "not sent: ConnectError: cannot connect to <webhook>" and not (tmp_path / "s.json").exists()
