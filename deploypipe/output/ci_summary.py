"""Render a run report as a Markdown summary for CI (GitHub's $GITHUB_STEP_SUMMARY).

    deploypipe ci-summary report.json [--exit-code N] [--output PATH]

reads the report ``deploypipe deploy --json`` (or ``rollback --json``) printed
(``-``: from standard input)
and writes Markdown to stdout, or appends it to ``--output`` (GitHub appends
every step's summary to the same file). When the report is missing or not
JSON (deploypipe stopped before running, e.g. an invalid pipeline), the
summary says so and shows ``--exit-code``.

The report is read as :class:`~deploypipe.stages.report.Report`, the model
``report.json`` is written from.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from deploypipe.stages.report import Report, StageReport

__all__ = ["render_markdown", "render_missing", "summarize", "write_step_summary"]

_OUTCOME = {"deployed": "✅", "blocked": "⛔", "rolled_back": "↩️", "needs_human": "🚨",
            "rollback_verified": "✅", "rollback_failed": "🚨", "unchanged": "⏸️"}
_STATUS = {"succeeded": "✅", "failed": "❌", "errored": "💥", "skipped": "⏭️", "not_run": "➖", "from_run": "↩️"}
_CELL_MAX = 300
_FENCE = "`" * 3


def _cell(value: Any, limit: int = _CELL_MAX) -> str:
    """A table cell: no pipes or newlines breaking the table, long text cut."""
    text = "" if value is None else str(value)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", "").replace("\n", "<br>")


def _duration(seconds: Any) -> str:
    try:
        value = float(seconds)
    except (TypeError, ValueError):
        return ""
    if value < 60:
        return f"{value:.1f} s"
    minutes, secs = divmod(int(round(value)), 60)
    return f"{minutes}m {secs:02d}s" if minutes < 60 else f"{minutes // 60}h {minutes % 60:02d}m"


def _elapsed(report: Report) -> str:
    if report.finished_at is None:
        return ""
    return _duration((report.finished_at - report.started_at).total_seconds())


def _stage_result(stage: StageReport) -> str:
    text = f"{_STATUS.get(stage.status, '')} {stage.status}".strip()
    if stage.error is not None and stage.error.message:
        text += f": {stage.error.type}: {stage.error.message}"
    return text


def render_markdown(report: Report) -> str:
    """The Markdown summary of one run report."""
    outcome = report.outcome.value
    lines = [f"## {_OUTCOME.get(outcome, '❔')} deploypipe {report.pipeline}: {outcome.replace('_', ' ')} "
             f"(exit {report.exit_code})", ""]
    if report.message and report.message != outcome:
        lines += [f"> {_cell(report.message, 2000).replace('<br>', ' ')}", ""]
    facts = [f"Run `{report.run_id}`", f"started {report.started_at.isoformat()}"]
    if _elapsed(report):
        facts.append(f"took {_elapsed(report)}")
    if report.resumed_from:
        facts.append(f"resumed from `{report.resumed_from}`")
    lines += [" · ".join(facts), ""]

    if report.stages:
        lines += ["| Stage | Type | Result | Attempts | Time |", "|---|---|---|---:|---:|"]
        for stage in report.stages:
            lines.append(f"| {_cell(stage.id)} | `{_cell(stage.type)}` | {_cell(_stage_result(stage))} "
                         f"| {_cell(stage.attempts)} | {_duration(stage.duration_s)} |")
        lines.append("")
    warnings = [(s.id, w) for s in report.stages for w in s.warnings]
    if warnings:
        lines += ["### Warnings", ""] + [f"- **{_cell(sid)}**: {_cell(w)}" for sid, w in warnings] + [""]

    if report.deploys:
        lines += ["### Deploys", "", "| Service | Deploy | Commit | Status |", "|---|---|---|---|"]
        for deploy in report.deploys:
            commit = (deploy.commit or "")[:12]
            lines.append(f"| {_cell(deploy.service)} | `{_cell(deploy.deploy_id)}` | "
                         f"{'`' + _cell(commit) + '`' if commit else ''} | {_cell(deploy.status)} |")
        lines.append("")

    rollback = report.rollback
    if rollback.performed:
        state = "✅ verified" if rollback.verified else "🚨 **NOT verified: a human must act**"
        lines += ["### Rollback", "", f"Rollback performed, {state}.", ""]
        if rollback.items:
            lines += ["| Stage | Action | Verified | Summary |", "|---|---|---|---|"]
            for item in rollback.items:
                lines.append(f"| {_cell(item.stage)} | {_cell(item.action)} | "
                             f"{'✅' if item.verified else '❌'} | {_cell(item.summary)} |")
            lines.append("")

    for diagnostic in report.diagnostics:
        what = f"{diagnostic.kind} log of {diagnostic.service}" + (
            f" deploy `{_cell(diagnostic.deploy_id)}`" if diagnostic.deploy_id else "")
        lines += [f"<details><summary>Why: {what}: {_cell(diagnostic.headline or 'see the lines')}</summary>", "",
                  _FENCE, *[line.replace(_FENCE, "'''") for line in diagnostic.lines], _FENCE, "", "</details>", ""]

    if report.run_dir:
        lines += [f"Run directory: `{report.run_dir}` (events.jsonl and report.json)", ""]
    return "\n".join(lines) + "\n"


def render_missing(source: str, reason: str, exit_code: int | None) -> str:
    """The summary when there is no usable report: deploypipe stopped before a run started."""
    code = "?" if exit_code is None else exit_code
    return (f"## ⛔ deploypipe: no run report (exit {code})\n\n"
            f"`{source}`: {reason}. deploypipe stopped before a run started (invalid usage, pipeline or "
            "configuration, or the lock was held); its one-line reason is in the step's log.\n")


def write_step_summary(report: Report, path: Path) -> None:
    """Append the Markdown summary of ``report`` to ``path`` (created if missing)."""
    with Path(path).open("a", encoding="utf-8") as out:
        out.write(render_markdown(report))


def _read(path: Path | None) -> tuple[Report | None, str]:
    """The report in ``path`` (None: standard input), or why there is none."""
    try:
        text = sys.stdin.read() if path is None else path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, "file not found"
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"cannot read it ({type(exc).__name__})"
    if not text.strip():
        return None, "empty"
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"not JSON (line {exc.lineno}: {exc.msg})"
    if not isinstance(data, dict) or "outcome" not in data:
        return None, "not a deploypipe run report (no outcome)"
    try:
        return Report.model_validate(data), ""
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        return None, f"not a deploypipe run report ({'.'.join(map(str, first['loc']))}: {first['msg']})"


def summarize(report: str, *, exit_code: int | None = None, output: Path | None = None) -> int:
    """``deploypipe ci-summary``: Markdown for report file ``report`` (``-``: standard input) on stdout, or appended
    to ``output``; 0 (a missing or unreadable report is summarized as such, with ``exit_code``)."""
    source = None if report == "-" else Path(report)
    found, reason = _read(source)
    name = "standard input" if source is None else report
    text = render_markdown(found) if found is not None else render_missing(name, reason, exit_code)
    if output is None:
        sys.stdout.write(text)
    else:
        with output.open("a", encoding="utf-8") as out:
            out.write(text)
    return 0

