"""A run as one self-contained HTML page (``report.html`` beside ``report.json``): what people look at.

    render_html(report, events, logs) -> str      # the page, from the report, the journal and the command logs
    write_report_html(run_dir) -> Path            # reads the three from a run directory, writes report.html

The page shows the header (outcome, exit code, message), the stages on a time line, the waves of a multi-service
release (each service triggered → live → verified or failed → rolled back), the health probes and the traffic looks
as charts, the rollback steps and the last lines of each command log. It loads nothing: CSS, script and
SVG are inline and its Content-Security-Policy forbids every other source. Every value is HTML-escaped, and the page
holds nothing that is not already in the (redacted) run directory. Sections come from :mod:`.html_sections`,
:mod:`.html_waves` and :mod:`.html_traffic`, charts from :mod:`.html_svg`, their data from :mod:`.html_data`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from deploypipe.output import html_data as data
from deploypipe.output.html_assets import CSP, CSS, SCRIPT
from deploypipe.output.html_parts import esc, fmt_seconds, slug
from deploypipe.output.html_sections import (
    deploys_section,
    health_section,
    logs_section,
    rollback_section,
    stages_section,
)
from deploypipe.output.html_traffic import traffic_baseline, traffic_looks, traffic_section, traffic_verdicts
from deploypipe.output.html_waves import waves_section
from deploypipe.stages.report import Report

__all__ = ["LOG_READ_MAX_BYTES", "read_journal", "read_logs", "render_html", "write_report_html"]

LOG_READ_MAX_BYTES = 1 << 20  # only the end of a bigger log is read: the page shows its last lines anyway


def _time(value: Any) -> str:
    moment = data.parse_time(value)
    if moment is None:
        return "-"
    iso = moment.isoformat()
    return f'<time datetime="{esc(iso)}">{esc(moment.strftime("%Y-%m-%d %H:%M:%S"))} UTC</time>'


def _header(report: Report, span_s: float, nav: Sequence[tuple[str, str]]) -> str:
    outcome = report.outcome.value
    facts = [("run", f'<span class="mono">{esc(report.run_id)}</span>'), ("started", _time(report.started_at))]
    if report.finished_at is not None:
        facts.append(("took", esc(fmt_seconds((report.finished_at - report.started_at).total_seconds()))))
    else:
        facts.append(("journal spans", esc(fmt_seconds(span_s))))
    if report.pipeline_path:
        facts.append(("pipeline file", f'<span class="mono">{esc(report.pipeline_path)}</span>'))
    if report.resumed_from:
        facts.append(("resumed from", f'<span class="mono">{esc(report.resumed_from)}</span>'))
    message = f'<p class="message">{esc(report.message)}</p>' if report.message else ""
    return (f'<header><div><h1>deploypipe · {esc(report.pipeline)} '
            f'<span class="outcome" id="outcome">{esc(outcome.replace("_", " "))} · exit {esc(report.exit_code)}'
            f"</span></h1>{message}"
            f'<dl class="facts">{"".join(f"<div><dt>{esc(k)}</dt><dd>{v}</dd></div>" for k, v in facts)}</dl>'
            "<nav>" + "".join(f'<a href="#{esc(a)}">{esc(t)}</a>' for a, t in nav) + "</nav></div></header>")


def render_html(report: Report, events: Sequence[Mapping[str, Any]], logs: Mapping[str, str]) -> str:
    """The report page of one run: ``events`` is the journal (events.jsonl), ``logs`` maps log file name to text."""
    journal = [event for event in events if isinstance(event, Mapping)]
    span = data.run_span(report, journal)
    marks = data.markers(report, journal)
    title = f"deploypipe · {report.pipeline} · {report.outcome.value.replace('_', ' ')} · {report.run_id}"
    sections = [(anchor, label, html) for anchor, label, html in (
        ("stages", "Stages", stages_section(report, data.stage_bars(report, journal), marks, span)),
        ("deploys", "Deploys", deploys_section(report)),
        ("waves", "Waves", waves_section(report, journal)),
        ("health", "Health", health_section(data.probes(report, journal), marks)),
        ("traffic", "Traffic", traffic_section(traffic_looks(report, journal), traffic_verdicts(report),
                                             traffic_baseline(report, journal))),
        ("rollback", "Rollback", rollback_section(report, journal)),
        ("logs", "Logs", logs_section(data.log_excerpts(report, logs), data.diagnostics(report))),
    ) if html]
    nav = [(anchor, label) for anchor, label, _ in sections]
    run_dir = f' Run directory: <span class="mono">{esc(report.run_dir)}</span>.' if report.run_dir else ""
    return (
        "<!doctype html>\n"
        f'<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{esc(CSP)}">'
        '<meta name="referrer" content="no-referrer">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="generator" content="deploypipe"><title>{esc(title)}</title>'
        '<link rel="icon" href="data:,">'
        f"<style>{CSS}</style></head>\n"
        f'<body class="outcome-{slug(report.outcome.value)}">{_header(report, span, nav)}\n'
        f"<main>{''.join(html for _, _, html in sections)}</main>\n"
        f"<footer>Written by deploypipe from the run's report.json, events.jsonl and command logs (already redacted)."
        f"{run_dir} Times are seconds since the run started.</footer>\n"
        f"<script>{SCRIPT}</script></body></html>\n"
    )


def read_logs(run_dir: Path, max_bytes: int = LOG_READ_MAX_BYTES) -> dict[str, str]:
    """The command logs of a run directory (``*.log``) by file name; of a log over ``max_bytes``, its end only."""
    logs = {}
    for path in sorted(Path(run_dir).glob("*.log")):
        if not path.is_file():
            continue
        with open(path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - max_bytes))
            raw = handle.read()
        if size > max_bytes:  # drop the partial first line
            raw = raw.split(b"\n", 1)[-1]
        logs[path.name] = raw.decode("utf-8", errors="replace")
    return logs


def read_journal(run_dir: Path) -> list[dict[str, Any]]:
    """The events of ``events.jsonl``; lines that are not a JSON object (a torn last line) are skipped.

    The same reading as ``engine.journal.read_events``, kept here so this module type-checks on its own.
    """
    events: list[dict[str, Any]] = []
    path = Path(run_dir) / "events.jsonl"
    if not path.exists():
        return events
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(event, dict):
                events.append(event)
    return events


def write_report_html(run_dir: Path) -> Path:
    """Write ``report.html`` beside ``report.json`` in ``run_dir`` (atomically) and return its path."""
    run_dir = Path(run_dir)
    report = Report.load(run_dir / "report.json")
    page = render_html(report, read_journal(run_dir), read_logs(run_dir))
    path = run_dir / "report.html"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, path)
    return path
