"""Wire one command: environment -> redactor/logging -> pipeline -> lock -> journal -> runner -> report.

``tasks``/``cli`` only parse options and call these functions; these functions
return a report and an exit code and raise DeployPipeError for usage problems.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from deploypipe.errors import DeployPipeError, ExitCode, LockHeldError, SpecError, UsageError
from deploypipe.redact import Redactor

__all__ = ["Invocation", "load", "plan", "run_pipeline"]

DEFAULT_PIPELINE = "pipelines/local.yaml"


@dataclass
class Invocation:
    """Options shared by the tasks that run pipelines."""

    pipeline: str | None = None
    project_dir: Path = field(default_factory=Path.cwd)
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    json_output: bool = False
    wait_lock_s: float | None = None
    keep_running: bool = False
    interactive: bool | None = None
    sleep: Callable[[float], None] | None = None
    clock: Callable[[], float] | None = None
    http_factory: Callable[[], Any] | None = None
    render_factory: Callable[[], Any] | None = None
    stdout: Any = None
    stderr: Any = None

    @property
    def ci(self) -> bool:
        return bool(self.env.get("CI")) and self.env.get("CI", "").lower() not in ("0", "false", "no")

    @property
    def state_dir(self) -> Path:
        return self.project_dir / ".deploypipe"

    def pipeline_path(self) -> Path:
        name = self.pipeline or self.env.get("DEPLOYPIPE_PIPELINE") or DEFAULT_PIPELINE
        path = Path(name)
        return path if path.is_absolute() else self.project_dir / path

    def is_interactive(self) -> bool:
        if self.interactive is not None:
            return self.interactive
        return not self.ci and sys.stdin.isatty()


def _redactor(inv: Invocation) -> Redactor:
    redactor = Redactor()
    redactor.add_from_env(inv.env)
    return redactor


def setup_logging(inv: Invocation, redactor: Redactor) -> None:
    from deploypipe.logsetup import configure_logging

    configure_logging(json_lines=inv.json_output or inv.ci, redactor=redactor,
                      level=inv.env.get("DEPLOYPIPE_LOG_LEVEL", "info"), stream=inv.stderr)


def load(inv: Invocation, redactor: Redactor | None = None):
    """Load and validate the pipeline (after preparing the embedded local default when it asks for one)."""
    from deploypipe.spec.loader import load_pipeline

    path = inv.pipeline_path()
    loaded = load_pipeline(path, inv.env)
    if redactor is not None:
        redactor.add(*loaded.secrets)
    return loaded


def _resources(inv: Invocation, loaded: Any, redactor: Redactor):
    from deploypipe.resources import Resources

    interactive = inv.is_interactive()

    def confirm(question: str) -> bool:
        if not interactive:
            return False
        stream = inv.stderr or sys.stderr
        stream.write(f"{question} [y/N] ")
        stream.flush()
        return sys.stdin.readline().strip().lower() in ("y", "yes")

    kwargs: dict[str, Any] = {}
    if inv.sleep is not None:
        kwargs["sleep"] = inv.sleep
    if inv.clock is not None:
        kwargs["clock"] = inv.clock
    return Resources(project_dir=inv.project_dir, state_dir=inv.state_dir, env=dict(inv.env), targets=loaded.spec.targets,
                     render_factory=inv.render_factory, http_factory=inv.http_factory, confirm=confirm,
                     interactive=interactive, redactor=redactor, **kwargs)


def plan(inv: Invocation) -> list[dict[str, Any]]:
    """What each stage would do, with resolved params (secrets masked). No side effects."""
    from deploypipe.stages.registry import get_stage

    redactor = _redactor(inv)
    loaded = load(inv, redactor)
    steps = []
    for stage in loaded.spec.stages:
        impl = get_stage(stage.type)
        params = loaded.params[stage.id]
        steps.append(redactor({
            "id": stage.id, "type": stage.type, "when": stage.when, "on_failure": stage.on_failure,
            "touches_production": impl.touches_production, "would": impl.plan(params),
            "params": params.model_dump(mode="json"),
        }))
    return steps


def _blocked_report(run_id: str, loaded: Any, journal: Any, exc: DeployPipeError) -> dict[str, Any]:
    from datetime import datetime, timezone

    now = datetime.now(timezone.utc).isoformat()
    report = {"run_id": run_id, "pipeline": loaded.spec.name, "pipeline_path": str(loaded.path),
              "started_at": now, "finished_at": now, "outcome": "blocked", "exit_code": int(exc.exit_code),
              "message": exc.render(), "resumed_from": None,
              "stages": [{"id": s.id, "type": s.type, "status": "not_run", "attempts": 0, "duration_s": 0.0,
                          "error": None, "outputs": {}, "warnings": [], "summary": "", "changed_production": False}
                         for s in loaded.spec.stages],
              "deploys": [], "rollback": {"performed": False, "verified": None, "items": []},
              "run_dir": str(journal.run_dir)}
    journal.emit("run_finished", outcome="blocked", exit_code=int(exc.exit_code), message=exc.render())
    journal.write_report(report)
    return report


def run_pipeline(inv: Invocation, *, resume: str | None = None, execute: Callable[..., Any] | None = None,
                 loaded: Any = None) -> dict[str, Any]:
    """Run (or resume) the pipeline; return the report.

    ``execute(runner)`` overrides what is run (rollback --run); ``loaded`` runs a pipeline built in code
    (manual rollback) instead of the file.
    """
    from deploypipe.journal import Journal, new_run_id, read_events, run_dir_for
    from deploypipe.locking import FileLock
    from deploypipe.progress import ConsoleProgress
    from deploypipe.runner import Runner, pipeline_digest

    redactor = _redactor(inv)
    setup_logging(inv, redactor)
    if loaded is None:
        loaded = load(inv, redactor)
    else:
        redactor.add(*loaded.secrets)
    previous_events = None
    if resume:
        previous_events = read_events(run_dir_for(inv.state_dir, resume))
        started = next((e for e in previous_events if e.get("event") == "run_started"), None)
        if started and started.get("digest") != pipeline_digest(loaded):
            raise UsageError(f"run {resume} used a different version of {loaded.path}",
                             hint="resume only with the pipeline the run started with, or roll it back with "
                                  f"`invoke rollback --run {resume}`")
        if any(e.get("event") == "run_finished" for e in previous_events):
            raise UsageError(f"run {resume} already finished; nothing to resume")
    import structlog

    run_id = new_run_id()
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(run_id=run_id)
    journal = Journal(inv.state_dir / "runs" / run_id, run_id, redactor)
    stderr = inv.stderr or sys.stderr
    progress = None
    if not (inv.json_output or inv.ci):
        progress = ConsoleProgress(stderr, live=stderr.isatty())
        journal.subscribe(progress)
    resources = _resources(inv, loaded, redactor)
    lock = FileLock(inv.state_dir, loaded.spec.lock.key or loaded.spec.name, run_id,
                    sleep=resources.sleep, clock=resources.clock)
    wait = loaded.spec.lock.wait_s if inv.wait_lock_s is None else inv.wait_lock_s
    try:
        try:
            lock.acquire(wait)
        except LockHeldError as exc:
            return _blocked_report(run_id, loaded, journal, exc)
        try:
            runner = Runner(loaded, resources, journal)
            if execute is not None:
                return execute(runner)
            return runner.run(resume_events=previous_events, resumed_from=resume)
        finally:
            lock.release()
    finally:
        if progress is not None:
            progress.close()
        resources.close()
        journal.close()


def emit_report(inv: Invocation, report: Mapping[str, Any]) -> int:
    """Print the report (JSON on stdout with --json, a table otherwise) and return the exit code."""
    from deploypipe.progress import print_summary

    if inv.json_output:
        out = inv.stdout or sys.stdout
        out.write(json.dumps(report, indent=2, default=str) + "\n")
        out.flush()
    else:
        print_summary(report, inv.stdout or sys.stdout)
    return int(report["exit_code"])


def fail_line(exc: DeployPipeError, stream: Any = None, env: Mapping[str, str] | None = None) -> int:
    """The error boundary's one line (secrets masked); returns the exit code."""
    redactor = Redactor()
    redactor.add_from_env(dict(os.environ) if env is None else env)
    (stream or sys.stderr).write(redactor.text(f"deploypipe: {exc.render()}") + "\n")
    return int(exc.exit_code)

