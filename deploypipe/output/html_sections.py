"""The sections of the HTML report: stages, deploys, health, rollback and logs, each a ``<section>``.

Each function returns escaped HTML, or ``""`` for a section with nothing to show (a run without deploys has no
deploys section); the traffic section is in :mod:`.html_traffic`. Logs and stage outputs sit in ``<details>``,
collapsed, so the page opens on the story.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from deploypipe.output.html_data import Diagnostic, LogExcerpt, Marker, Probe, StageBar
from deploypipe.output.html_parts import esc, fmt_seconds, mono, section, slug, swatch, table
from deploypipe.output.html_svg import gantt_svg, phase_shape, probe_svg, shape_svg
from deploypipe.stages.report import Report, RollbackItem

__all__ = ["deploys_section", "health_section", "logs_section", "rollback_section", "stages_section"]

_OUTPUTS_MAX_CHARS = 20_000


def _outputs(outputs: Mapping[str, Any]) -> str:
    if not outputs:
        return ""
    text = json.dumps(outputs, indent=2, sort_keys=True, default=str)
    if len(text) > _OUTPUTS_MAX_CHARS:
        text = text[:_OUTPUTS_MAX_CHARS] + "\n… (cut; the full outputs are in report.json)"
    return f'<details class="outputs"><summary>outputs</summary><pre>{esc(text)}</pre></details>'


def stages_section(report: Report, bars: Sequence[StageBar], marks: Sequence[Marker], span_s: float) -> str:
    if not report.stages:
        return section("stages", "Stages", '<p class="note">This run has no stages.</p>')
    legend = ('<div class="legend">' + swatch("st-succeeded", "succeeded") + swatch("st-failed", "failed")
              + swatch("st-errored", "errored") + swatch("st-skipped", "skipped / not run")
              + swatch("retry", "retry") + swatch("rollback", "rollback") + "</div>")
    rows = []
    for stage in report.stages:
        detail = [f"<div>{esc(stage.summary)}</div>"] if stage.summary else []
        if stage.error is not None:
            detail.append(f'<div class="error">{esc(stage.error.type)}: {esc(stage.error.message)}</div>')
        if stage.warnings:
            detail.append('<ul class="warnings">' + "".join(f"<li>{esc(w)}</li>" for w in stage.warnings) + "</ul>")
        if stage.changed_production:
            detail.append('<div class="note">changed production</div>')
        detail.append(_outputs(stage.outputs))
        took = fmt_seconds(stage.duration_s) if stage.status not in ("not_run", "skipped") else ""
        rows.append([f"<td>{mono(stage.id)}</td>", f"<td>{mono(stage.type)}</td>",
                     f'<td class="status st-{slug(stage.status)}">{esc(stage.status.replace("_", " "))}</td>',
                     f'<td class="num">{esc(stage.attempts)}</td>', f'<td class="num">{esc(took)}</td>',
                     f"<td>{''.join(detail)}</td>"])
    stage_table = table(["Stage", "Type", "Status", "Attempts", "Time", "What happened"], rows, "stages")
    return section("stages", "Stages", legend + gantt_svg(bars, marks, span_s) + stage_table)


def deploys_section(report: Report) -> str:
    if not report.deploys:
        return ""
    rows = [[f"<td>{esc(d.service)}</td>", f"<td>{mono(d.deploy_id or '-')}</td>",
             f"<td>{mono((d.commit or '-')[:12])}</td>", f"<td>{esc(d.status or '-')}</td>"]
            for d in report.deploys]
    return section("deploys", "Deploys", table(["Service", "Deploy", "Commit", "Status"], rows, "deploys"))


def _legend_mark(shape: str, cls: str, label: str) -> str:
    return (f'<span><svg viewBox="0 0 14 14" aria-hidden="true"><g class="probe-key {esc(cls)}">'
            f"{shape_svg(shape, 7, 7)}</g></svg>{esc(label)}</span>")


def health_section(items: Sequence[Probe], marks: Sequence[Marker]) -> str:
    if not items:
        return section("health", "Health probes", '<p class="note">No health probe was journalled in this run.</p>')
    phases = Counter(p.phase for p in items)
    failed = [p for p in items if not p.ok]
    timed = [p.elapsed_ms for p in items if p.elapsed_ms is not None]
    counts = ", ".join(f"{esc(phase.replace('_', ' '))} {n}" for phase, n in phases.items())
    slowest = f"; slowest {max(timed):g} ms" if timed else ""
    summary = (f'<p class="note">{len(items)} probes ({counts}); '
               f'<span class="{"bad-text" if failed else "ok-text"}">{len(failed)} failed</span>{esc(slowest)}.</p>')
    legend = ['<div class="legend">']
    legend += [_legend_mark(phase_shape(phase), f"ok phase-{slug(phase)}", phase.replace("_", " "))
               for phase in phases]
    legend.append(_legend_mark("cross", "fail", "failed probe"))
    legend += [swatch("rollback", "rollback"), "<span>dashed lines: a deploy live, rollback steps</span></div>"]
    body = summary + "".join(legend) + probe_svg(items, marks)
    if failed:
        rows = [[f'<td class="num">{esc(fmt_seconds(p.at_s))}</td>', f"<td>{esc(p.phase)}</td>",
                 f"<td>{esc(p.status if p.status is not None else '-')}</td>", f"<td>{esc(p.reason)}</td>",
                 f"<td>{mono(p.url)}</td>"] for p in failed[:50]]
        body += "<h3>Failed probes</h3>" + table(["At", "Phase", "Status", "Reason", "URL"], rows, "failed-probes")
    return section("health", "Health probes", body)


def _items_from_events(events: Sequence[Mapping[str, Any]]) -> list[RollbackItem]:
    found = []
    for event in events:
        if event.get("event") in ("compensation_succeeded", "compensation_failed", "rollback_verified",
                                  "rollback_unverified"):
            details = event.get("details")
            failed = str(event.get("event")).endswith(("failed", "unverified"))
            found.append(RollbackItem(
                stage=str(event.get("stage") or ""), type=str(event.get("type") or ""),
                action=str(event.get("action") or event.get("event")),
                verified=event.get("verified") is True and not failed, summary=str(event.get("summary") or ""),
                details=dict(details) if isinstance(details, Mapping) else {}))
    return found


def rollback_section(report: Report, events: Sequence[Mapping[str, Any]]) -> str:
    rollback = report.rollback
    items = list(rollback.items) or _items_from_events(events)
    started = next((e for e in events if e.get("event") == "rollback_started"), None)
    if not rollback.performed and not items and started is None:
        return section("rollback", "Rollback", '<p class="note">No rollback: nothing was undone in this run.</p>')
    if rollback.verified:
        state = '<p class="ok-text">Rollback performed and verified.</p>'
    else:
        state = '<p class="bad-text"><strong>Rollback NOT verified: a human must check production.</strong></p>'
    body = [state]
    stages = started.get("stages") if started is not None else None
    if isinstance(stages, list) and stages:
        body.append(f'<p class="note">Undone in reverse order: {", ".join(mono(s) for s in stages)}.</p>')
    steps = []
    for item in items:
        mark = '<span class="yes">✓ verified</span>' if item.verified else '<span class="no">✗ not verified</span>'
        details = "".join(f"<div><dt>{esc(k)}</dt><dd>{mono(v)}</dd></div>" for k, v in item.details.items()
                          if v not in ("", None))
        facts = f'<dl class="facts">{details}</dl>' if details else ""
        steps.append(f"<li>{mono(item.stage)} <span class=\"muted\">({esc(item.type)})</span>: "
                     f"<strong>{esc(item.action.replace('_', ' '))}</strong> · {mark}"
                     f"<div>{esc(item.summary)}</div>{facts}</li>")
    body.append(f'<ol class="steps">{"".join(steps)}</ol>' if steps else '<p class="note">No step was recorded.</p>')
    return section("rollback", "Rollback", "".join(body))


def _excerpt(summary: str, lines: Sequence[str], total: int, cls: str) -> str:
    shown = f"last {len(lines)} of {total} lines" if total > len(lines) else f"{total} lines" if total else "empty"
    text = "\n".join(lines) if lines else "(empty)"
    return (f'<details class="{esc(cls)}"><summary>{summary} <span class="muted">· {esc(shown)}</span></summary>'
            f"<pre>{esc(text)}</pre></details>")


def logs_section(logs: Sequence[LogExcerpt], diagnostics: Sequence[Diagnostic]) -> str:
    if not logs and not diagnostics:
        return section("logs", "Logs", '<p class="note">No command log in this run directory.</p>')
    body = ['<div class="tools" hidden><button type="button" data-open>Expand all</button>'
            '<button type="button" data-close>Collapse all</button></div>']
    if diagnostics:
        body.append("<h3>From Render's logs</h3>")
        for diag in diagnostics:
            what = f"{diag.service or 'service'} {diag.kind or ''} log".replace("  ", " ")
            where = f" of {mono(diag.deploy_id)}" if diag.deploy_id else ""
            stage = f" (stage {mono(diag.stage)})" if diag.stage else ""
            body.append(_excerpt(f"{esc(what)}{where}{stage}", diag.lines, diag.total_lines, "diagnostic"))
    if logs:
        body.append("<h3>Command logs</h3>")
        for log in logs:
            stage = f" (stage {mono(log.stage)})" if log.stage else ""
            body.append(_excerpt(f"{mono(log.name)}{stage}", log.lines, log.total_lines, "log"))
    return section("logs", "Logs", "".join(body))
