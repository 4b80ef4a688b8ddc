"""What Render says about a service's running instances: crashes (``server_failed``), restarts, error log lines.

Services without a URL (background workers, private services, cron jobs) cannot be probed over HTTP; they are
judged from these: an instance that crashed or was restarted since a moment, the app's log lines that match an
error pattern, and for a cron job the outcome of its last run (``cron_job_run_ended``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from deploypipe.render.models import ServiceEvent

if TYPE_CHECKING:  # pragma: no cover
    from deploypipe.render.client import RenderClient

__all__ = ["ACCESS_LINE", "CRASH_EVENTS", "DEFAULT_ERROR_PATTERN", "MAX_EVENTS", "Instances", "describe_crash",
           "describe_run", "during", "error_lines", "look"]

CRASH_EVENTS = ["server_failed", "server_restarted"]
#: app log lines that count as errors unless a pipeline says otherwise
DEFAULT_ERROR_PATTERN = r"Traceback \(most recent call last\)|\b\w*(Error|Exception)\b:|\bFATAL\b|\bpanic:|\bCRITICAL\b"
#: an HTTP server's access-log line (uvicorn, gunicorn): the request, not the app's own words
ACCESS_LINE = re.compile(r'"[A-Z]+ \S+ HTTP/\d(\.\d)?" \d{3}')
#: the newest events one ``look`` asks for (crashes and ended runs together)
MAX_EVENTS = 100


@dataclass(frozen=True)
class Instances:
    """One look at a service since ``since``: its crash events (newest first), matching error lines (oldest first)
    and, for a cron job, the runs that ended (``cron_job_run_ended``, newest first)."""

    crashes: tuple[ServiceEvent, ...]
    errors: tuple[str, ...]
    runs: tuple[ServiceEvent, ...] = ()

    @property
    def cron_status(self) -> str | None:
        """The status of the last run that ended (successful, unsuccessful, canceled), None when none did."""
        return str(self.runs[0].details.get("status") or "") if self.runs else None

    def run(self, run_id: str) -> ServiceEvent | None:
        """The ``cron_job_run_ended`` event of run ``run_id``, None while it has not ended."""
        return next((e for e in self.runs if e.details.get("cronJobRunId") == run_id), None)

    @property
    def quiet(self) -> bool:
        return not self.crashes and not self.errors and self.cron_status in (None, "successful")


def during(event: ServiceEvent, windows: list[tuple[datetime, datetime]]) -> bool:
    """Whether ``event`` happened inside one of ``windows`` (e.g. while another deploy's new instance was being
    health-checked: its failures are that deploy's, not the live release's)."""
    at = event.timestamp
    return at is not None and any(start <= at <= end for start, end in windows)


def describe_crash(event: ServiceEvent) -> str:
    """``exit status 1`` / ``exited early`` / ``restarted`` from a server_failed or server_restarted event."""
    if event.type == "server_restarted":
        return "restarted"
    reason = event.details.get("reason") or {}
    if not isinstance(reason, dict):
        return "failed"
    if reason.get("nonZeroExit") is not None:
        return f"exit status {reason['nonZeroExit']}"
    if reason.get("oomKilled"):
        return "out of memory"
    if reason.get("earlyExit"):
        return "exited early"
    return str(reason.get("unhealthy") or reason.get("timedOutReason") or "failed")


def describe_run(event: ServiceEvent) -> str:
    """``run-… ended unsuccessful (exit status 1)`` from a cron_job_run_ended event."""
    reason = event.details.get("reason")
    how = describe_crash(event) if isinstance(reason, dict) and reason else ""
    return (f"run {event.details.get('cronJobRunId')} ended {event.details.get('status') or 'with no status'}"
            + (f" ({how})" if how and how != "failed" else ""))


def error_lines(client: RenderClient, *, service_id: str, owner_id: str, since: datetime, until: datetime,
                pattern: re.Pattern[str]) -> tuple[str, ...]:
    """The app's log lines matching ``pattern`` between ``since`` and ``until``, oldest first (access lines never
    count)."""
    page = client.list_logs(owner_id, resources=service_id, start=since, end=until, types=["app"], limit=100)
    return tuple(e.message.strip() for e in sorted(page.logs, key=lambda e: e.timestamp)
                 if pattern.search(e.message) and not ACCESS_LINE.search(e.message))


def look(client: RenderClient, *, service_id: str, owner_id: str, since: datetime, until: datetime,
         pattern: re.Pattern[str], cron: bool = False, logs: bool = True) -> Instances:
    """Crash events, error lines (unless ``logs`` is off: then only with a crash) and the last cron run since
    ``since``."""
    events = client.list_events(service_id, types=[*CRASH_EVENTS, *(["cron_job_run_ended"] if cron else [])],
                                start_time=since, max_items=MAX_EVENTS)
    recent = [e for e in events if (e.timestamp or since) >= since]
    crashes = tuple(e for e in recent if e.type in CRASH_EVENTS)
    runs = [e for e in recent if e.type == "cron_job_run_ended"]
    errors = error_lines(client, service_id=service_id, owner_id=owner_id, since=since, until=until,
                         pattern=pattern) if logs or crashes else ()
    return Instances(crashes=crashes, errors=errors, runs=tuple(runs))
