"""How ``status`` reads: one headline per service (also what the watch posts), then that service's details."""

from __future__ import annotations

from datetime import UTC, datetime

from deploypipe.commands.status_model import CronRuns, RunView, ServiceStatus, StatusReport, Thresholds

__all__ = ["message", "render_text", "when"]


def when(value: datetime | None) -> str:
    """``2026-11-30 07:16 UTC``, or ``?`` when Render gave no time."""
    if value is None:
        return "?"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _age(hours: float) -> str:
    return f"{round(hours * 60)} min" if hours < 1 else f"{hours:.0f} h" if hours < 48 else f"{hours / 24:.0f} d"


def _run(run: RunView) -> str:
    """``run run-… ended unsuccessful (exit status 1) at 2026-11-30 05:00 UTC``."""
    return f"run {run.id} ended {run.status}{f' ({run.reason})' if run.reason else ''} at {when(run.ended_at)}"


def _failing_runs(runs: CronRuns, now: datetime) -> str:
    if runs.last is None:
        return ""
    if runs.failing == 1:
        return f"the last run failed: {_run(runs.last)}"
    hours = (now - runs.failing_since).total_seconds() / 3600 if runs.failing_since else 0.0
    lasting = f"for {_age(hours)} " if hours * 60 >= 1 else ""
    return (f"the last {'at least ' if runs.at_least else ''}{runs.failing} runs failed, {lasting}since "
            f"{when(runs.failing_since)}: {_run(runs.last)}")


def message(status: ServiceStatus, limits: Thresholds, now: datetime) -> str:
    """The service's headline: FAILING and FROZEN with why, else healthy; then what is live and how far behind."""
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
    where = (f"live {live.id} at commit {(live.commit or '?')[:7]} since {when(live.finished_at or live.created_at)}"
             if live else "nothing is live")
    if gap.commits:
        where += f", {gap.commits} commit{'s' if gap.commits != 1 else ''} / {_age(gap.hours or 0)} behind {gap.branch}"
    elif gap.commits == 0:
        where += f", up to date with {gap.branch}"
    elif gap.note and live:
        where += f" ({gap.note})"
    failing = []
    if "crashing" in status.problems:
        failing.append(f"{status.crashes} instance failure{'s' if status.crashes != 1 else ''} in the last "
                       f"{limits.crash_window_s / 60:g} min ({status.crash})")
    if status.cron is not None:
        if "cron_failing" in status.problems:
            failing.append(_failing_runs(status.cron, now))
        else:
            where += f"; last {_run(status.cron.last)}" if status.cron.last else "; no run yet"
    frozen = "FROZEN — " + "; ".join(parts) + "; " if parts else ""
    if failing:
        head = ("FAILING — " + "; ".join(failing) + (f"; app log: {status.error_line}" if status.error_line else "")
                + "; " + frozen)
    else:
        head = frozen or "healthy — "
    return f"{status.key}: {head}{where}"


def _took(run: RunView) -> str:
    if run.started_at is None or run.ended_at is None:
        return ""
    seconds = max(0.0, (run.ended_at - run.started_at).total_seconds())
    return f" after {seconds:.0f} s" if seconds < 120 else f" after {_age(seconds / 3600)}"


def _runs_line(runs: CronRuns) -> str:
    last = runs.last
    if last is None:
        return "  last run: none yet since the live release went live"
    line = (f"  last run: {last.id} {last.status}{f' ({last.reason})' if last.reason else ''}, ended "
            f"{when(last.ended_at)}{_took(last)}; {runs.ended} run{'s' if runs.ended != 1 else ''} ended since live")
    if runs.failing:
        line += (f", {'at least ' if runs.at_least else ''}{runs.failing} unsuccessful in a row since "
                 f"{when(runs.failing_since)}")
    return line


def render_text(report: StatusReport) -> str:
    """One headline per service, then its details."""
    lines = []
    for s in report.services:
        lines.append(s.message)
        lines.append(f"  service {s.name} ({s.service_id}), branch {s.branch or '?'}, auto-deploy "
                     f"{'on' if s.auto_deploy else 'off'}")
        if s.behind.note and s.live:
            lines.append(f"  behind: unknown: {s.behind.note}")
        if s.cron is not None:
            lines.append(_runs_line(s.cron))
        if s.in_progress:
            d = s.in_progress
            lines.append(f"  in progress: {d.id} {d.status} at {(d.commit or '?')[:7]} since {when(d.created_at)}")
        lines += [f"  {d.id}  {d.status:<22} {(d.commit or '?')[:7]}  {when(d.created_at)}  {d.trigger}"
                  for d in s.recent]
    return "\n".join(lines) + "\n"
