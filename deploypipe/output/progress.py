"""Terminal reporters: live per-stage progress (spinner + elapsed time) and the final summary table.

Both read journal events / the report only, so they can be swapped for the
JSON output in CI without the runner knowing.
"""

from __future__ import annotations

from typing import Any, Mapping, TextIO

from deploypipe.stages.report import Report

__all__ = ["ConsoleProgress", "StepProgress", "print_summary", "progress_text"]

_MARK = {"succeeded": "[green]✓[/]", "failed": "[red]✗[/]", "errored": "[red]![/]", "skipped": "[dim]-[/]",
         "not_run": "[dim]·[/]"}
_OUTCOME = {"deployed": "green", "unchanged": "green", "blocked": "yellow", "rolled_back": "yellow",
            "needs_human": "bold red"}


class ConsoleProgress:
    """Shows a spinner with elapsed time for the running stage and one line per finished stage."""

    def __init__(self, stream: TextIO, *, live: bool):
        from rich.console import Console

        self.console = Console(file=stream, highlight=False, soft_wrap=True)
        self.live = live
        self._status: Any = None
        self._description = ""

    def _start(self, description: str) -> None:
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self._status = Progress(SpinnerColumn(), TimeElapsedColumn(), TextColumn("{task.description}"),
                                console=self.console, transient=True)
        self._description = description
        self._status.add_task(description, total=None)
        self._status.start()

    def _stop(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None

    def __call__(self, event: Mapping[str, Any]) -> None:
        kind = event.get("event")
        stage = event.get("stage")
        if kind == "stage_started":
            self._stop()
            if self.live:  # without a terminal there is one line per stage: the one saying how it ended
                self._start(f"[bold]{stage}[/] ({event.get('type')}) {event.get('plan', '')}")
        elif kind in ("stage_succeeded", "stage_failed", "stage_errored"):
            self._stop()
            status = kind.removeprefix("stage_")
            detail = event.get("summary") or (event.get("error") or {}).get("message", "")
            self.console.print(f"{_MARK[status]} {stage:<22} {event.get('duration_s', 0):>7.1f}s  ", end="")
            self.console.print(str(detail)[:200], markup=False, highlight=False)
            for warning in event.get("warnings") or []:
                self.console.print("  [yellow]warning:[/] ", end="")
                self.console.print(str(warning), markup=False)
        elif kind == "db_progress" and self._status is not None:
            self._status.update(self._status.task_ids[0],
                                description=f"{self._description}  [cyan]{progress_text(event)}[/]")
        elif kind == "stage_retrying":
            self.console.print(f"  [yellow]↻[/] {stage} attempt {event.get('attempt')} failed; retrying in "
                               f"{event.get('wait_s')}s", highlight=False)
        elif kind == "rollback_started":
            self._stop()
            self.console.print(f"[bold yellow]⟲ rolling back:[/] {', '.join(event.get('stages') or [])}")
        elif kind in ("compensation_succeeded", "compensation_failed", "rollback_verified", "rollback_unverified"):
            ok = kind in ("compensation_succeeded", "rollback_verified")
            self.console.print(f"  {'[green]✓[/]' if ok else '[red]✗[/]'} {stage}: {event.get('action')} ", end="")
            self.console.print(str(event.get("summary", "")), markup=False)

    def close(self) -> None:
        self._stop()


def progress_text(fields: Mapping[str, Any]) -> str:
    """``dump 42% (ETA 12s)`` from a db_progress event's fields."""
    eta = fields.get("eta_s")
    return f"{fields.get('phase')} {fields.get('percent', 0):.0f}%" + (f" (ETA {eta:.0f}s)" if eta is not None else "")


class StepProgress:
    """A progress bar for a long database step outside a pipeline (``invoke backup``); a log line without a TTY."""

    def __init__(self, stream: TextIO, *, live: bool, log: Any):
        from rich.console import Console

        self.console = Console(file=stream, highlight=False, soft_wrap=True)
        self.live, self.log = live, log
        self._bar: Any = None
        self._tasks: dict[str, Any] = {}

    def __call__(self, fields: Mapping[str, Any]) -> None:
        if not self.live:
            self.log.info("db_progress", **fields)
            return
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

        if self._bar is None:
            self._bar = Progress(TextColumn("{task.description:<8}"), BarColumn(), TaskProgressColumn(),
                                 TimeRemainingColumn(), console=self.console, transient=True)
            self._bar.start()
        phase = str(fields.get("phase"))
        if phase not in self._tasks:
            self._tasks[phase] = self._bar.add_task(phase, total=fields.get("total") or None)
        self._bar.update(self._tasks[phase], completed=fields.get("done", 0), total=fields.get("total") or None)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def print_summary(report: Report, stream: TextIO) -> None:
    """The final table (stage, result, time) and the outcome line."""
    from rich.console import Console
    from rich.table import Table

    console = Console(file=stream, highlight=False, soft_wrap=True)
    table = Table(title=f"deploypipe run {report.run_id} — {report.pipeline}", title_justify="left")
    for column in ("stage", "type", "result", "time"):
        table.add_column(column, justify="right" if column == "time" else "left")
    for stage in report.stages:
        table.add_row(stage.id, stage.type, stage.status, f"{stage.duration_s:.1f}s")
    console.print(table)
    for deploy in report.deploys:
        console.print(f"deploy {deploy.service}: {deploy.deploy_id} commit {(deploy.commit or '')[:12]} "
                      f"{deploy.status}", markup=False)
    for diagnostic in report.diagnostics:
        what = f"{diagnostic.kind} log of {diagnostic.service}" + (f" deploy {diagnostic.deploy_id}"
                                                                     if diagnostic.deploy_id else "")
        console.print(f"[bold]{what}[/] (last {len(diagnostic.lines)} lines):")
        for line in diagnostic.lines:
            console.print(f"  {line}", markup=False, highlight=False)
    colour = _OUTCOME.get(report.outcome.value, "white")
    console.print(f"[{colour}]{report.outcome.value}[/] (exit {report.exit_code}): ", end="")
    console.print(report.message, markup=False)
    console.print(f"run record: {report.run_dir}", markup=False)
