"""Render a run report as a Markdown summary for CI (GitHub's $GITHUB_STEP_SUMMARY).

    python -m deploypipe.ci_summary report.json [--exit-code N] [--output PATH]

reads the report ``deploypipe deploy --json`` (or ``rollback --json``) printed
and writes Markdown to stdout, or appends it to ``--output`` (GitHub appends
every step's summary to the same file). When the report is missing or not
JSON (deploypipe stopped before running, e.g. an invalid pipeline), the
summary says so and shows ``--exit-code``.

Report keys used: run_id, pipeline, started_at, finished_at, outcome, exit_code,
message, stages[{id, type, status, attempts, duration_s, error{type, message},
warnings}], deploys[{service, deploy_id, commit, status}], rollback{performed,
verified, items[{stage, action, verified, summary}]}, run_dir.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, Mapping, Sequence

__all__ = ["main", "render_markdown", "render_missing", "write_step_summary"]

_OUTCOME = {"deployed": "✅", "blocked": "⛔", "rolled_back": "↩️", "needs_human": "🚨",
            "rollback_verified": "✅", "rollback_failed": "🚨"}
_STATUS = {"succeeded": "✅", "failed": "❌", "errored": "💥", "skipped": "⏭️", "not_run": "➖", "from_run": "↩️"}
_CELL_MAX = 300


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


def _elapsed(report: Mapping[str, Any]) -> str:
    try:
        start = datetime.fromisoformat(str(report["started_at"]))
        end = datetime.fromisoformat(str(report["finished_at"]))
    except (KeyError, ValueError):
        return ""
    return _duration((end - start).total_seconds())


def _stage_result(stage: Mapping[str, Any]) -> str:
    status = str(stage.get("status", "?"))
    text = f"{_STATUS.get(status, '')} {status}".strip()
    error = stage.get("error") or {}
    if isinstance(error, Mapping) and error.get("message"):
        text += f": {error.get('type', 'error')}: {error['message']}"
    return text


def render_markdown(report: Mapping[str, Any]) -> str:
    """The Markdown summary of one run report."""
    outcome = str(report.get("outcome", "unknown"))
    lines = [f"## {_OUTCOME.get(outcome, '❔')} deploypipe {report.get('pipeline', '?')}: {outcome.replace('_', ' ')} "
             f"(exit {report.get('exit_code', '?')})", ""]
    message = report.get("message")
    if message and message != outcome:
        lines += [f"> {_cell(message, 2000).replace('<br>', ' ')}", ""]
    facts = [f"Run `{report.get('run_id', '?')}`"]
    if report.get("started_at"):
        facts.append(f"started {report['started_at']}")
    if _elapsed(report):
        facts.append(f"took {_elapsed(report)}")
    if report.get("resumed_from"):
        facts.append(f"resumed from `{report['resumed_from']}`")
    lines += [" · ".join(facts), ""]

    stages = list(report.get("stages") or [])
    if stages:
        lines += ["| Stage | Type | Result | Attempts | Time |", "|---|---|---|---:|---:|"]
        for stage in stages:
            lines.append(f"| {_cell(stage.get('id'))} | `{_cell(stage.get('type'))}` | {_cell(_stage_result(stage))} "
                         f"| {_cell(stage.get('attempts', ''))} | {_duration(stage.get('duration_s'))} |")
        lines.append("")
    warnings = [(s.get("id"), w) for s in stages for w in s.get("warnings") or []]
    if warnings:
        lines += ["### Warnings", ""] + [f"- **{_cell(sid)}**: {_cell(w)}" for sid, w in warnings] + [""]

    deploys = list(report.get("deploys") or [])
    if deploys:
        lines += ["### Deploys", "", "| Service | Deploy | Commit | Status |", "|---|---|---|---|"]
        for deploy in deploys:
            commit = str(deploy.get("commit") or "")[:12]
            lines.append(f"| {_cell(deploy.get('service'))} | `{_cell(deploy.get('deploy_id'))}` | "
                         f"{'`' + _cell(commit) + '`' if commit else ''} | {_cell(deploy.get('status'))} |")
        lines.append("")

    rollback = report.get("rollback") or {}
    if rollback.get("performed"):
        verified = rollback.get("verified")
        state = "✅ verified" if verified else "🚨 **NOT verified: a human must act**"
        lines += ["### Rollback", "", f"Rollback performed, {state}.", ""]
        items = list(rollback.get("items") or [])
        if items:
            lines += ["| Stage | Action | Verified | Summary |", "|---|---|---|---|"]
            for item in items:
                lines.append(f"| {_cell(item.get('stage'))} | {_cell(item.get('action'))} | "
                             f"{'✅' if item.get('verified') else '❌'} | {_cell(item.get('summary'))} |")
            lines.append("")

    if report.get("run_dir"):
        lines += [f"Run directory: `{report['run_dir']}` (events.jsonl and report.json)", ""]
    return "\n".join(lines) + "\n"


def render_missing(source: str, reason: str, exit_code: int | None) -> str:
    """The summary when there is no usable report: deploypipe stopped before a run started."""
    code = "?" if exit_code is None else exit_code
    return (f"## ⛔ deploypipe: no run report (exit {code})\n\n"
            f"`{source}`: {reason}. deploypipe stopped before a run started (invalid usage, pipeline or "
            "configuration, or the lock was held); its one-line reason is in the step's log.\n")


def write_step_summary(report: Mapping[str, Any], path: Path) -> None:
    """Append the Markdown summary of ``report`` to ``path`` (created if missing)."""
    with Path(path).open("a", encoding="utf-8") as out:
        out.write(render_markdown(report))


def _read(path: Path) -> tuple[Mapping[str, Any] | None, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, "file not found"
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"cannot read it ({type(exc).__name__})"
    if not text.strip():
        return None, "empty"
    try:
        report = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"not JSON (line {exc.lineno}: {exc.msg})"
    if not isinstance(report, dict) or "outcome" not in report:
        return None, "not a deploypipe run report (no outcome)"
    return report, ""


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry: Markdown to stdout or appended to --output; 0 unless the arguments are wrong."""
    parser = argparse.ArgumentParser(prog="python -m deploypipe.ci_summary",
                                     description="Render a deploypipe run report (JSON) as a Markdown summary.")
    parser.add_argument("report", type=Path, help="report JSON (what `deploypipe deploy --json` printed)")
    parser.add_argument("--exit-code", type=int, default=None, help="deploypipe's exit code, shown when no report")
    parser.add_argument("--output", type=Path, default=None, help="append to this file instead of printing")
    args = parser.parse_args(argv)
    report, reason = _read(args.report)
    text = render_markdown(report) if report is not None else render_missing(str(args.report), reason, args.exit_code)
    if args.output is None:
        sys.stdout.write(text)
    else:
        with args.output.open("a", encoding="utf-8") as out:
            out.write(text)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
