"""``status``: what is live on each service of a pipeline, how far it trails its branch, and whether it is frozen.

For every service target: the live deploy (id, commit, since when); how many commits the live commit is behind
the branch Render builds and how old the oldest missing one is (from the target's git checkout ``repo_dir``:
``origin/<branch>``, else ``<branch>``); the last deploys and how they ended; auto-deploy; a deploy in progress.

Production is FROZEN when the last ``failed`` deploys (default 2) all failed, or the live commit trails the branch
by more than ``max_behind_commits`` commits or ``max_behind_hours`` hours (both off unless given). Exit 0 healthy,
1 frozen, 2 usage or configuration, or Render could not be asked (nothing was checked).

Read-only: no run directory, no lock. Watch mode (``notify_env``): post to the webhook ONCE per new problem and once
"recovered" when it clears. The problem's fingerprint (service, kind, live deploy: not counts or ages, which move
every run) is kept in a small state file, updated only after the webhook took the message, so an undelivered
message is tried again on the next run.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from pydantic import BaseModel, Field

from deploypipe.commands.invocation import Invocation, redactor_for
from deploypipe.commands.lint import offline_env
from deploypipe.errors import ExitCode, ProviderError, UsageError
from deploypipe.render.history import failure_streak
from deploypipe.render.models import Deploy

__all__ = ["Behind", "DeployView", "ServiceStatus", "StatusReport", "Thresholds", "check_status", "show_status",
           "watch_notify"]

log = structlog.get_logger("deploypipe.status")


class DeployView(BaseModel):
    id: str
    status: str
    commit: str | None = None
    trigger: str = ""
    created_at: datetime | None = None
    finished_at: datetime | None = None

    @classmethod
    def of(cls, deploy: Deploy) -> DeployView:
        return cls(id=deploy.id, status=deploy.status, commit=deploy.commit_id, trigger=deploy.trigger,
                   created_at=deploy.created_at, finished_at=deploy.finished_at)


class Behind(BaseModel):
    """How far the live commit trails the branch head; ``commits`` is None when the checkout cannot tell (``note``)."""

    branch: str | None = None
    ref: str | None = None
    commits: int | None = None
    hours: float | None = Field(None, description="Age of the oldest commit on the branch that is not live.")
    oldest_missing_at: str | None = None
    note: str = ""


class ServiceStatus(BaseModel):
    key: str
    name: str
    service_id: str
    branch: str | None = None
    auto_deploy: bool = False
    live: DeployView | None = None
    behind: Behind = Field(default_factory=Behind)
    in_progress: DeployView | None = None
    recent: list[DeployView] = Field(default_factory=list, description="The last deploys, newest first.")
    failed: list[DeployView] = Field(default_factory=list, description="Failed deploys since the last success.")
    problems: list[str] = Field(default_factory=list, description="failed_deploys, behind_commits, behind_hours.")
    message: str = ""


class StatusReport(BaseModel):
    pipeline: str
    checked_at: str
    healthy: bool
    exit_code: int
    fingerprint: str = Field("", description="Identifies the current problems; empty when healthy.")
    services: list[ServiceStatus]
    notification: str = ""


@dataclass(frozen=True)
class Thresholds:
    failed: int = 2
    max_behind_commits: int | None = None
    max_behind_hours: float | None = None
    history: int = 10

    @classmethod
    def parse(cls, failed: Any = None, commits: Any = None, hours: Any = None, history: Any = None) -> Thresholds:
        """From command-line strings; UsageError (exit 2) for a value that is not a number in range."""
        def number(name: str, value: Any, kind: type, default: Any, least: int) -> Any:
            try:
                parsed = default if value in (None, "") else kind(value)
            except ValueError:
                parsed = least - 1
            if parsed is not None and parsed < least:
                raise UsageError(f"{name} {value}: expected a {'number' if kind is float else 'whole number'} "
                                 f">= {least}", where="status")
            return parsed

        return cls(number("--failed", failed, int, 2, 1), number("--max-behind-commits", commits, int, None, 0),
                   number("--max-behind-hours", hours, float, None, 0), number("--history", history, int, 10, 1))


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=False)


def _when(value: datetime | None) -> str:
    """``2026-11-30 07:16 UTC``, or ``?`` when Render gave no time."""
    if value is None:
        return "?"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _age(hours: float) -> str:
    return f"{round(hours * 60)} min" if hours < 1 else f"{hours:.0f} h" if hours < 48 else f"{hours / 24:.0f} d"


def behind(repo: Path, commit: str | None, branch: str | None, now: datetime) -> Behind:
    """Commits on the branch (``origin/<branch>``, else ``<branch>``) that ``commit`` lacks, and the oldest's age."""
    result = Behind(branch=branch)
    if not commit or not branch:
        result.note = "nothing is live" if not commit else "Render reports no branch for this service"
        return result
    if _git(repo, "rev-parse", "--git-dir").returncode != 0:
        result.note = f"{repo} is not a git checkout (set repo_dir)"
        return result
    ref = next((r for r in (f"origin/{branch}", branch)
                if _git(repo, "rev-parse", "--verify", "-q", f"{r}^{{commit}}").returncode == 0), None)
    if ref is None:
        result.note = f"the checkout at {repo} does not know branch {branch} (git fetch origin {branch})"
        return result
    result.ref = ref
    if _git(repo, "cat-file", "-e", f"{commit}^{{commit}}").returncode != 0:
        result.note = f"the checkout at {repo} does not know the live commit {commit[:7]} (git fetch)"
        return result
    result.commits = int(_git(repo, "rev-list", "--count", f"{commit}..{ref}").stdout.strip() or 0)
    if result.commits:
        times = _git(repo, "log", "--format=%ct", f"{commit}..{ref}").stdout.split()
        oldest = float(times[-1])
        result.oldest_missing_at = datetime.fromtimestamp(oldest, UTC).isoformat().replace("+00:00", "Z")
        result.hours = round(max(0.0, now.timestamp() - oldest) / 3600, 2)
    return result


def _message(status: ServiceStatus, limits: Thresholds) -> str:
    parts = []
    if "failed_deploys" in status.problems:
        listed = ", ".join(f"{d.id} {d.status}" for d in status.failed)
        at_least = "at least " if len(status.failed) >= limits.history else ""
        parts.append(f"the last {at_least}{len(status.failed)} deploys failed ({listed})")
    gap = status.behind
    exceeded = [f"{limit:g} {unit}" for problem, limit, unit in (
        ("behind_commits", limits.max_behind_commits, "commit" + "s" * (limits.max_behind_commits != 1)),
        ("behind_hours", limits.max_behind_hours, "h")) if problem in status.problems and limit is not None]
    if exceeded:
        parts.append(f"the live commit trails {gap.branch} by more than {' and '.join(exceeded)}")
    live = status.live
    where = (f"live {live.id} at commit {(live.commit or '?')[:7]} since {_when(live.finished_at or live.created_at)}"
             if live else "nothing is live")
    if gap.commits:
        where += f", {gap.commits} commit{'s' if gap.commits != 1 else ''} / {_age(gap.hours or 0)} behind {gap.branch}"
    elif gap.commits == 0:
        where += f", up to date with {gap.branch}"
    elif gap.note and live:
        where += f" ({gap.note})"
    head = "FROZEN — " + "; ".join(parts) + "; " if parts else "healthy — "
    return f"{status.key}: {head}{where}"


def service_status(client: Any, key: str, target: Any, repo: Path, limits: Thresholds, now: datetime
                   ) -> ServiceStatus:
    service = client.find_service(target.id or target.name or key)
    recent = client.list_deploys(service.id, max_items=limits.history)
    live = next((d for d in recent if d.status == "live"), None) or client.live_deploy(service.id)
    busy = next((d for d in recent if d.in_progress), None)
    status = ServiceStatus(key=key, name=service.name, service_id=service.id, branch=service.branch,
                           auto_deploy=service.auto_deploy, live=DeployView.of(live) if live else None,
                           in_progress=DeployView.of(busy) if busy else None,
                           behind=behind(repo, live.commit_id if live else None, service.branch, now),
                           recent=[DeployView.of(d) for d in recent],
                           failed=[DeployView.of(d) for d in failure_streak(recent)])
    if len(status.failed) >= limits.failed:
        status.problems.append("failed_deploys")
    gap = status.behind
    if limits.max_behind_commits is not None and (gap.commits or 0) > limits.max_behind_commits:
        status.problems.append("behind_commits")
    if limits.max_behind_hours is not None and (gap.hours or 0) > limits.max_behind_hours:
        status.problems.append("behind_hours")
    status.message = _message(status, limits)
    return status


def check_status(inv: Invocation, limits: Thresholds, *, now: datetime | None = None) -> StatusReport:
    """Ask Render about every service target of the invocation's pipeline (read-only)."""
    from deploypipe.engine.loader import load_pipeline
    from deploypipe.render.client import RenderClient

    path = inv.pipeline_path()
    loaded = load_pipeline(path, offline_env(path, inv.env))
    now = now or datetime.now(UTC)
    services = []
    client = inv.render_factory() if inv.render_factory else RenderClient.from_env(inv.env)
    try:
        for key, target in loaded.spec.targets.services.items():
            repo = (inv.project_dir / target.repo_dir).resolve()
            services.append(service_status(client, key, target, repo, limits, now))
    finally:
        if inv.render_factory is None:
            client.close()
    problems = sorted([s.key, kind, s.live.id if s.live else ""] for s in services for kind in s.problems)
    fingerprint = hashlib.sha256(json.dumps(problems).encode()).hexdigest()[:16] if problems else ""
    return StatusReport(pipeline=loaded.spec.name, checked_at=now.isoformat().replace("+00:00", "Z"),
                        healthy=not problems, exit_code=1 if problems else 0, fingerprint=fingerprint,
                        services=services)


def render_text(report: StatusReport) -> str:
    """One headline per service, then its details."""
    lines = []
    for s in report.services:
        lines.append(s.message)
        lines.append(f"  service {s.name} ({s.service_id}), branch {s.branch or '?'}, auto-deploy "
                     f"{'on' if s.auto_deploy else 'off'}")
        if s.behind.note and s.live:
            lines.append(f"  behind: unknown: {s.behind.note}")
        if s.in_progress:
            d = s.in_progress
            lines.append(f"  in progress: {d.id} {d.status} at {(d.commit or '?')[:7]} since {_when(d.created_at)}")
        lines += [f"  {d.id}  {d.status:<22} {(d.commit or '?')[:7]}  {_when(d.created_at)}  {d.trigger}"
                  for d in s.recent]
    return "\n".join(lines) + "\n"


def _post(inv: Invocation, url: str, body: dict[str, Any]) -> str:
    """POST ``body`` (3 attempts for network errors, 429 and 5xx); '' when delivered, else why not (URL masked)."""
    import time

    import httpx
    from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

    http = inv.http_factory() if inv.http_factory else httpx.Client(timeout=httpx.Timeout(10.0, connect=5.0))
    try:
        for attempt in Retrying(stop=stop_after_attempt(3), wait=wait_exponential(1, max=4), reraise=True,
                                sleep=inv.sleep or time.sleep,
                                retry=retry_if_exception_type((httpx.TransportError, httpx.HTTPStatusError))):
            with attempt:
                response = http.post(url, json=body)
                if response.status_code == 429 or response.status_code >= 500:
                    response.raise_for_status()
        return "" if response.is_success else f"HTTP {response.status_code}"
    except httpx.HTTPStatusError as exc:
        return f"HTTP {exc.response.status_code} after 3 attempts"
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}".replace(url, "<webhook>")
    finally:
        if inv.http_factory is None:
            http.close()


def watch_notify(inv: Invocation, report: StatusReport, *, url_env: str, state: Path, slack: bool = False) -> str:
    """Notify a new problem or a recovery once (fingerprint kept in ``state``); returns what happened."""
    try:
        previous = json.loads(state.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        previous = {}
    if previous.get("fingerprint", "") == report.fingerprint:
        return "unchanged: already notified" if report.fingerprint else "unchanged: healthy"
    event = "problem" if report.fingerprint else "recovered"
    url = (inv.env.get(url_env) or "").strip()
    if not url:
        return f"not sent: {url_env} is not set"
    frozen = [s.message for s in report.services if s.problems]
    text = (f"deploypipe {report.pipeline}: PRODUCTION FROZEN\n" + "\n".join(frozen) if frozen else
            f"deploypipe {report.pipeline}: RECOVERED\n" + "\n".join(s.message for s in report.services))
    body = {"text": text} if slack else {"event": event, "text": text, **report.model_dump(mode="json")}
    error = _post(inv, url, body)
    if error:
        log.warning("notification_failed", error=error, kind=event)
        return f"not sent: {error}"
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text(json.dumps({"fingerprint": report.fingerprint, "event": event, "at": report.checked_at,
                                 "text": text}, indent=2) + "\n", encoding="utf-8")
    log.info("notification_sent", kind=event, fingerprint=report.fingerprint)
    return f"sent: {event}"


def show_status(inv: Invocation, limits: Thresholds, *, as_json: bool = False, notify_env: str | None = None,
                state: str | None = None, slack: bool = False) -> int:
    """Print the status (JSON on stdout with ``as_json``), notify when watching; return 0, 1 or 2."""
    try:
        report = check_status(inv, limits)
    except ProviderError as exc:
        inv.err.write(redactor_for(inv).text(f"deploypipe: status: Render could not be asked: {exc.render()}")
                      + "\n")
        return int(ExitCode.INVALID)
    if notify_env:
        where = Path(state) if state else inv.state_dir / "watch" / f"{report.pipeline}.json"
        report.notification = watch_notify(inv, report, url_env=notify_env,
                                           state=where if where.is_absolute() else inv.project_dir / where,
                                           slack=slack)
    inv.out.write(report.model_dump_json(indent=2) + "\n" if as_json else render_text(report))
    inv.out.flush()
    return report.exit_code
