"""Run (or resume) a pipeline under its lock with a journal, and show the report: the core of deploy and rollback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import structlog

from deploypipe.commands.invocation import Invocation, load, redactor_for, resources_for, setup_logging
from deploypipe.engine.journal import Journal, new_run_id, read_events, run_dir_for
from deploypipe.engine.loader import LoadedPipeline
from deploypipe.engine.locking import ReleaseLock
from deploypipe.engine.resume import pipeline_digest
from deploypipe.engine.runner import Runner
from deploypipe.engine.signals import signum_of
from deploypipe.errors import DeployPipeError, UsageError
from deploypipe.stages.report import Outcome, Report

__all__ = ["emit_report", "run_pipeline"]

log = structlog.get_logger("deploypipe.run")


def _resume_events(inv: Invocation, loaded: LoadedPipeline, resume: str) -> list[dict[str, Any]]:
    """The journal of run ``resume``, after checking it can be resumed with this pipeline."""
    events = read_events(run_dir_for(inv.state_dir, resume))
    started = next((e for e in events if e.get("event") == "run_started"), None)
    if started is None:
        raise UsageError(f"run {resume} has no run_started event in its journal; nothing to resume")
    if started.get("digest") != pipeline_digest(loaded):
        raise UsageError(f"run {resume} used a different version of {loaded.path}",
                         hint="resume only with the pipeline the run started with, or roll it back with "
                              f"`invoke rollback --run {resume}`")
    if any(e.get("event") == "run_finished" for e in events):
        raise UsageError(f"run {resume} already finished; nothing to resume")
    if any(e.get("event") == "rollback_started" for e in events):
        raise UsageError(f"run {resume} was rolling back when it stopped; a resume would release again",
                         hint=f"finish the rollback with `invoke rollback --run {resume}`")
    return events


def _release_lock(inv: Invocation, loaded: LoadedPipeline, run_id: str, sleep: Any, clock: Any) -> ReleaseLock:
    """The file lock of this machine, plus the advisory lock on the first database target (across machines)."""
    databases = loaded.spec.targets.databases
    url = databases[next(iter(databases))].url if databases else None
    return ReleaseLock.for_run(inv.state_dir, loaded.spec.lock.key or loaded.spec.name, run_id, database_url=url,
                               env=inv.env, sleep=sleep, clock=clock)


def run_pipeline(inv: Invocation, *, resume: str | None = None, execute: Callable[[Runner], Report] | None = None,
                 loaded: LoadedPipeline | None = None) -> Report:
    """Run (or resume) the pipeline and return its report.

    ``execute(runner)`` overrides what is run (``rollback --run``); ``loaded``
    runs a pipeline built in code (a manual rollback) instead of the file.
    """
    from deploypipe.output.progress import ConsoleProgress

    redactor = redactor_for(inv)
    setup_logging(inv, redactor)
    if loaded is None:
        loaded = load(inv, redactor)
    else:
        redactor.add(*loaded.secrets)
    previous_events = _resume_events(inv, loaded, resume) if resume else None
    run_id = new_run_id()
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(run_id=run_id)
    journal = Journal(inv.state_dir / "runs" / run_id, run_id, redactor)
    progress = None
    if not (inv.json_output or inv.ci):
        progress = ConsoleProgress(inv.err, live=inv.err.isatty())
        journal.subscribe(progress)
    resources = resources_for(inv, loaded, redactor)
    lock = _release_lock(inv, loaded, run_id, resources.sleep, resources.clock)
    wait = loaded.spec.lock.wait_s if inv.wait_lock_s is None else inv.wait_lock_s
    runner = Runner(loaded, resources, journal, guard=lock, force=inv.force)
    interrupted: KeyboardInterrupt | None = None
    try:
        try:
            lock.acquire(wait)
        except DeployPipeError as exc:  # held by another run, or the database cannot be reached to take it
            report = runner.finish(Outcome.BLOCKED, message=exc.render())
        except KeyboardInterrupt as exc:  # recorded, then reported by the CLI's boundary like any early interrupt
            interrupted = exc
            report = runner.interrupted_before_start(signum_of(exc))
        else:
            try:
                report = execute(runner) if execute is not None else \
                    runner.run(resume_events=previous_events, resumed_from=resume)
            finally:
                lock.release()
    finally:
        if progress is not None:
            progress.close()
        resources.close()
        journal.close()
    _write_html(journal.run_dir)
    if interrupted is not None:
        raise interrupted
    return report


def _write_html(run_dir: Path) -> None:
    """``report.html`` beside ``report.json``; a report that cannot be drawn never changes the run's outcome."""
    from deploypipe.output.html import write_report_html

    try:
        write_report_html(run_dir)
    except (OSError, ValueError) as exc:
        log.warning("report_html_not_written", run_dir=str(run_dir), error=f"{type(exc).__name__}: {exc}")


def emit_report(inv: Invocation, report: Report) -> int:
    """Print the report (JSON on stdout with --json, a table otherwise) and return the exit code."""
    from deploypipe.output.progress import print_summary

    if inv.json_output:
        inv.out.write(json.dumps(report.to_json(), indent=2) + "\n")
        inv.out.flush()
    else:
        print_summary(report, inv.out)
    return report.exit_code
