"""A cron job in ``status``: its live release's last ended run, how long its runs have been failing, and why.

From Render's ``cron_job_run_ended`` events since the live release went live (``look``): the last run's outcome,
the unsuccessful runs in a row up to it (a canceled run neither counts nor ends the streak) and when the first of
them ended. For an unsuccessful last run, its error line is the app's own, from the run's log lines (its
``cron_job_run_started`` to its ``cron_job_run_ended``): the last matching the error pattern, else the last in the
app's words, never Render's ``==>`` lines, as ``headline`` picks them.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from deploypipe.commands.status_model import CronRuns, RunView
from deploypipe.render.instances import MAX_EVENTS, describe_crash, error_lines, look
from deploypipe.render.models import ServiceEvent
from deploypipe.stages.diagnostics import headline

__all__ = ["cron_runs"]

_ANY_LINE = re.compile(r"\S")


def _status(event: ServiceEvent) -> str:
    return str(event.details.get("status") or "")


def _reason(event: ServiceEvent) -> str:
    reason = event.details.get("reason")
    how = describe_crash(event) if isinstance(reason, dict) and reason else ""
    return "" if how == "failed" else how


def _error_line(client: Any, *, service_id: str, owner_id: str, since: datetime, until: datetime,
                pattern: re.Pattern[str]) -> str:
    """The run's error line in the app's own words ('' when it printed none)."""
    def matching(which: re.Pattern[str]) -> tuple[str, ...]:
        return error_lines(client, service_id=service_id, owner_id=owner_id, since=since,
                           until=until + timedelta(seconds=1), pattern=which)

    lines = list(matching(pattern)) or [line for line in matching(_ANY_LINE) if not line.startswith("==>")]
    return headline(lines) if lines else ""


def cron_runs(client: Any, *, service_id: str, owner_id: str, since: datetime, now: datetime,
              pattern: re.Pattern[str]) -> tuple[CronRuns, str]:
    """The runs that ended since ``since`` (the live release went live) and, when the last one was unsuccessful,
    its error line."""
    seen = look(client, service_id=service_id, owner_id=owner_id, since=since, until=now, pattern=pattern,
                cron=True, logs=False)
    if not seen.runs:
        return CronRuns(), ""
    ended = seen.runs[0]
    streak: list[ServiceEvent] = []
    broken = _status(ended) != "unsuccessful"
    for run in seen.runs if not broken else ():
        if _status(run) == "unsuccessful":
            streak.append(run)
        elif _status(run) != "canceled":
            broken = True
            break
    run_id = str(ended.details.get("cronJobRunId") or "")
    started = next((e.timestamp for e in client.list_events(service_id, types=["cron_job_run_started"],
                                                            start_time=since, max_items=MAX_EVENTS)
                    if e.details.get("cronJobRunId") == run_id), None)
    last = RunView(id=run_id, status=_status(ended), reason=_reason(ended), started_at=started,
                   ended_at=ended.timestamp)
    runs = CronRuns(last=last, ended=len(seen.runs), failing=len(streak),
                    failing_since=streak[-1].timestamp if streak else None,
                    at_least=bool(streak) and not broken and len(seen.runs) + len(seen.crashes) >= MAX_EVENTS)
    if not streak:
        return runs, ""
    previous = next((e.timestamp for e in seen.runs[1:] if e.timestamp is not None), None)
    return runs, _error_line(client, service_id=service_id, owner_id=owner_id, since=started or previous or since,
                             until=ended.timestamp or now, pattern=pattern)
