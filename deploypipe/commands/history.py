"""``history``: list recent runs from ``.deploypipe/runs`` or show one run's report."""

from __future__ import annotations

import json
import webbrowser
from pathlib import Path
from typing import Any, Callable

from deploypipe.commands.invocation import Invocation
from deploypipe.engine.journal import list_runs, read_events, read_report, run_dir_for
from deploypipe.errors import UsageError
from deploypipe.output.html import write_report_html

__all__ = ["open_report", "run_summaries", "show_history"]


def run_summaries(state_dir: Path, limit: int = 20) -> list[dict[str, Any]]:
    """One dict per run, newest first; an interrupted run (no report) is shown as such."""
    rows = []
    for run_dir in list_runs(state_dir, limit):
        report = read_report(run_dir)
        if report is None:
            events = read_events(run_dir)
            started = next((e for e in events if e.get("event") == "run_started"), {})
            rows.append({"run_id": run_dir.name, "pipeline": started.get("pipeline", "?"), "outcome": "interrupted",
                         "exit_code": None, "started_at": started.get("ts"), "message":
                         f"no report: resume with `invoke deploy --resume {run_dir.name}` or undo with "
                         f"`invoke rollback --run {run_dir.name}`"})
            continue
        rows.append({"run_id": report.run_id, "pipeline": report.pipeline, "outcome": report.outcome.value,
                     "exit_code": report.exit_code, "started_at": report.started_at.isoformat(),
                     "message": report.message})
    return rows


def open_report(inv: Invocation, run: str, opener: Callable[[str], bool] = webbrowser.open) -> int:
    """Open run ``run``'s report.html in the browser (writing it first for a run that has none yet)."""
    run_dir = run_dir_for(inv.state_dir, run)
    page = run_dir / "report.html"
    if not page.exists():
        if read_report(run_dir) is None:
            raise UsageError(f"run {run} has no report (it did not finish)",
                             hint=f"resume it with `invoke deploy --resume {run}` or undo it with "
                                  f"`invoke rollback --run {run}`")
        page = write_report_html(run_dir)
    url = page.resolve().as_uri()
    inv.out.write(f"{url}\n")
    if not opener(url):
        inv.err.write("deploypipe: no browser could be opened here; open the file above yourself\n")
    return 0


def show_history(inv: Invocation, *, run: str | None, limit: int, as_json: bool) -> int:
    out = inv.out
    if run:
        run_dir = run_dir_for(inv.state_dir, run)
        report = read_report(run_dir)
        if report is None:
            events = read_events(run_dir)
            if as_json:
                out.write(json.dumps({"run_id": run, "outcome": "interrupted", "events": events}, indent=2) + "\n")
            else:
                out.write(f"run {run} was interrupted; {len(events)} events in its journal\n")
        elif as_json:
            out.write(json.dumps(report.to_json(), indent=2) + "\n")
        else:
            from deploypipe.output.progress import print_summary

            print_summary(report, out)
        return 0
    rows = run_summaries(inv.state_dir, limit)
    if as_json:
        out.write(json.dumps(rows, indent=2) + "\n")
        return 0
    if not rows:
        out.write(f"no runs yet in {inv.state_dir / 'runs'}\n")
        return 0
    for row in rows:
        code = "-" if row["exit_code"] is None else row["exit_code"]
        out.write(f"{row['run_id']}  {row['pipeline']:<20} {row['outcome']:<12} exit {code}  "
                  f"{row.get('message') or ''}\n")
    return 0
