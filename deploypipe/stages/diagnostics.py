"""Why a release failed, in Render's own logs: the deploy's build logs, or its new instance's app logs.

Called when a deploy ends build_failed / pre_deploy_failed (build logs) or
update_failed (app logs), and when a health or traffic check fails on a live
release (app logs). The last lines (redacted) go into the run report through
``ctx.diagnose``; the most telling one (an ImportError, a traceback's last
line) is returned for the failure message. Fetching logs never changes the
verdict: when Render cannot say, the diagnostic says so.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Literal

from deploypipe.errors import DeployPipeError
from deploypipe.render.instances import ACCESS_LINE
from deploypipe.render.observability import LogEntry
from deploypipe.stages.base import ServiceRelease
from deploypipe.stages.context import StageContext
from deploypipe.stages.report import Diagnostic

__all__ = ["LINES", "explain_failure", "explain_release", "headline"]

#: how many log lines a diagnostic keeps
LINES = 30
_TELLING = re.compile(r"(Error|Exception|Traceback|FATAL|fatal:|error:|ERROR|panic:|failed)")
_BEFORE_S = 600  # how far before the deploy to look for the instances that served until then


def headline(lines: list[str]) -> str:
    """The most telling line: the last one naming an error in the app's or build's own words (Render's ``==>``
    status lines and HTTP access lines only when there is nothing else), else the last line that is not an HTTP
    access line ('' when there is none: an access line explains nothing the check did not already say)."""
    for own_words in (True, False):
        for line in reversed(lines):
            text = line.strip()
            if own_words and (text.startswith("==>") or ACCESS_LINE.search(text)):
                continue
            if _TELLING.search(text) and not text.startswith("File "):
                return text
    return next((text for line in reversed(lines) if not ACCESS_LINE.search(text := line.strip())), "")


def _instances(entries: list[LogEntry]) -> set[str]:
    return {e.labels["instance"] for e in entries if e.labels.get("instance")}


def _app_lines(ctx: StageContext, owner_id: str, service_id: str, since: datetime, until: datetime) -> list[LogEntry]:
    """App log lines of the instances that started after ``since`` (the new release), oldest first."""
    client = ctx.resources.render
    page = client.list_logs(owner_id, resources=service_id, start=since, end=until, types=["app"], limit=100)
    entries = list(page.logs)
    before = client.list_logs(owner_id, resources=service_id, start=since - timedelta(seconds=_BEFORE_S),
                              end=since, types=["app"], limit=100)
    old = _instances(list(before.logs))
    new = [e for e in entries if e.labels.get("instance") not in old] if old else entries
    return sorted(new or entries, key=lambda e: e.timestamp)


def explain_failure(ctx: StageContext, *, service: str, service_id: str, owner_id: str, deploy_id: str | None,
                    kind: Literal["build", "app"], since: datetime, until: datetime | None = None) -> str:
    """Fetch the logs that explain a failure, add a Diagnostic to the report, return its headline ('' if none)."""
    until = until or datetime.now(UTC)
    try:
        if kind == "build":
            page = ctx.resources.render.list_logs(owner_id, resources=service_id, start=since, end=until,
                                                  types=["build"], limit=100)
            entries = sorted(page.logs, key=lambda e: e.timestamp)
        else:
            entries = _app_lines(ctx, owner_id, service_id, since, until)
    except DeployPipeError as exc:
        ctx.diagnose(Diagnostic(stage=ctx.stage_id, service=service, deploy_id=deploy_id, kind=kind,
                                headline="", lines=[f"Render's {kind} logs could not be read: {exc.message}"]))
        return ""
    redact = ctx.resources.redactor.text
    lines = [redact(e.message.rstrip()) for e in entries if e.message.strip()][-LINES:]
    line = headline(lines)
    ctx.diagnose(Diagnostic(stage=ctx.stage_id, service=service, deploy_id=deploy_id, kind=kind, headline=line,
                            lines=lines or [f"Render has no {kind} logs for this deploy"]))
    return line


def explain_release(ctx: StageContext, release: ServiceRelease) -> str:
    """The new instance's app logs for a live release that failed a check; returns the headline ('' if none)."""
    try:
        owner_id = ctx.resources.render.get_service(release.service_id).owner_id
    except DeployPipeError as exc:
        ctx.diagnose(Diagnostic(stage=ctx.stage_id, service=release.service, deploy_id=release.deploy_id,
                                kind="app", lines=[f"Render's app logs could not be read: {exc.message}"]))
        return ""
    since = release.created_at or release.live_at or (ctx.now() - timedelta(seconds=_BEFORE_S))
    return explain_failure(ctx, service=release.service, service_id=release.service_id, owner_id=owner_id,
                           deploy_id=release.deploy_id, kind="app", since=since)
