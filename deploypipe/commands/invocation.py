"""What every command starts from: the options of one invocation, its secrets, logging, pipeline and collaborators."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from deploypipe.core.prompt import ask_yes_no
from deploypipe.core.redact import Redactor
from deploypipe.engine.loader import LoadedPipeline, load_pipeline
from deploypipe.errors import DeployPipeError
from deploypipe.stages.context import Resources

__all__ = ["DEFAULT_PIPELINE", "Invocation", "fail_line", "load", "redactor_for", "resources_for", "setup_logging"]

DEFAULT_PIPELINE = "pipelines/local.yaml"


@dataclass
class Invocation:
    """Options shared by the commands, and the seams tests replace (sleep, clock, HTTP and Render clients)."""

    pipeline: str | None = None
    project_dir: Path = field(default_factory=Path.cwd)
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    json_output: bool = False
    verbose: bool = False
    force: bool = False
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

    @property
    def out(self) -> Any:
        return self.stdout or sys.stdout

    @property
    def err(self) -> Any:
        return self.stderr or sys.stderr

    def pipeline_path(self) -> Path:
        name = self.pipeline or self.env.get("DEPLOYPIPE_PIPELINE") or DEFAULT_PIPELINE
        path = Path(name)
        return path if path.is_absolute() else self.project_dir / path

    def is_interactive(self) -> bool:
        if self.interactive is not None:
            return self.interactive
        return not self.ci and sys.stdin.isatty()

    def confirm(self, question: str) -> bool:
        """Ask the operator; no (without asking) when nobody is at a terminal."""
        return ask_yes_no(question, interactive=self.is_interactive(), out=self.err)


def redactor_for(inv: Invocation) -> Redactor:
    """A redactor that masks the secrets in the invocation's environment."""
    redactor = Redactor()
    redactor.add_from_env(inv.env)
    return redactor


def setup_logging(inv: Invocation, redactor: Redactor) -> None:
    """JSON lines at info in CI and with --json; otherwise a quiet console (warnings and errors, info with -v).

    On a console the progress display shows each stage's end, so the log lines that would say the same again
    are left out there; ``DEPLOYPIPE_LOG_LEVEL`` overrides the level everywhere.
    """
    from deploypipe.output.logsetup import configure_logging

    machine = inv.json_output or inv.ci
    default = "info" if machine or inv.verbose else "warning"
    configure_logging(json_lines=machine, redactor=redactor, level=inv.env.get("DEPLOYPIPE_LOG_LEVEL", default),
                      stream=inv.stderr, shown_by_progress=not machine)


def load(inv: Invocation, redactor: Redactor | None = None) -> LoadedPipeline:
    """Load and validate the invocation's pipeline file; its secret values join ``redactor``."""
    loaded = load_pipeline(inv.pipeline_path(), inv.env, inv.project_dir)
    if redactor is not None:
        redactor.add(*loaded.secrets)
    return loaded


def resources_for(inv: Invocation, loaded: LoadedPipeline, redactor: Redactor) -> Resources:
    """The collaborators of a run of ``loaded``; injected seams of the invocation take precedence."""
    kwargs: dict[str, Any] = {}
    if inv.sleep is not None:
        kwargs["sleep"] = inv.sleep
    if inv.clock is not None:
        kwargs["clock"] = inv.clock
    return Resources(project_dir=inv.project_dir, state_dir=inv.state_dir, env=dict(inv.env),
                     targets=loaded.spec.targets, render_factory=inv.render_factory, http_factory=inv.http_factory,
                     confirm=inv.confirm, interactive=inv.is_interactive(), redactor=redactor, **kwargs)


def fail_line(exc: DeployPipeError, stream: Any = None, env: Mapping[str, str] | None = None) -> int:
    """The error boundary's one line (secrets masked); returns the exit code."""
    redactor = Redactor()
    redactor.add_from_env(dict(os.environ) if env is None else env)
    (stream or sys.stderr).write(redactor.text(f"deploypipe: {exc.render()}") + "\n")
    return int(exc.exit_code)
