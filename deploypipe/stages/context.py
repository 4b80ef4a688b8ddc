"""What a stage runs with: the run's shared collaborators (Resources) and its own StageContext.

Everything with a side effect that a stage needs comes from here, so tests can
hand in an ``httpx.Client`` bound to the in-process emulator, a recording
``sleep`` or a fixed clock. No globals.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, TypeVar

from deploypipe.core.redact import Redactor
from deploypipe.spec.targets import Targets
from deploypipe.stages.base import Outputs, Params
from deploypipe.stages.report import Diagnostic, Report

if TYPE_CHECKING:  # pragma: no cover
    import httpx

    from deploypipe.render.client import RenderClient

__all__ = ["Resources", "StageContext", "utcnow"]

OutputsT = TypeVar("OutputsT", bound=Outputs)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Resources:
    """Collaborators of a run.

    ``render_factory`` builds the Render client lazily (read-only stages that
    never talk to Render never need an API key). ``http`` is the client used
    for health checks, smoke requests and webhooks. ``confirm`` asks the
    operator a yes/no question (returns False when not interactive).
    ``redactor`` masks the run's secrets in anything a stage writes itself
    (command logs, files).
    """

    project_dir: Path
    state_dir: Path
    env: Mapping[str, str]
    targets: Targets = field(default_factory=Targets)
    render_factory: Callable[[], RenderClient] | None = None
    http_factory: Callable[[], httpx.Client] | None = None
    confirm: Callable[[str], bool] = lambda question: False
    interactive: bool = False
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    redactor: Redactor = field(default_factory=Redactor)
    _render: Any = field(default=None, repr=False)
    _http: Any = field(default=None, repr=False)
    _held: dict[str, Any] = field(default_factory=dict, repr=False)

    def path(self, value: str | Path) -> Path:
        """``value`` as a path: absolute as given, else relative to the project directory."""
        path = Path(value)
        return path if path.is_absolute() else self.project_dir / path

    def database_url(self, key: str) -> str:
        """The connection URL of database target ``key`` (a secret: the run's redactor masks it)."""
        return self.targets.databases[key].url

    @property
    def render(self) -> RenderClient:
        if self._render is None:
            if self.render_factory is None:
                from deploypipe.render.client import RenderClient

                self._render = RenderClient.from_env(self.env, sleep=self.sleep, clock=self.clock)
            else:
                self._render = self.render_factory()
        return self._render

    @property
    def http(self) -> httpx.Client:
        if self._http is None:
            if self.http_factory is None:
                import httpx

                self._http = httpx.Client(timeout=httpx.Timeout(10.0, connect=5.0), follow_redirects=False)
            else:
                self._http = self.http_factory()
        return self._http

    def hold(self, key: str, resource: Any) -> None:
        """Keep ``resource`` (it has ``close()``) for a later stage of this run; closed with the run otherwise."""
        previous = self._held.pop(key, None)
        if previous is not None:
            previous.close()
        self._held[key] = resource

    def take(self, key: str) -> Any:
        """The resource held under ``key`` (now the caller's to close), or None."""
        return self._held.pop(key, None)

    def close(self) -> None:
        """Close the clients and whatever is still held (also on SIGTERM and Ctrl-C: the run's ``finally``)."""
        while self._held:
            _, resource = self._held.popitem()
            resource.close()
        for client in (self._render, self._http):
            if client is not None:
                client.close()
        self._render = self._http = None


@dataclass(frozen=True)
class StageContext:
    """Everything a stage may use, passed explicitly.

    ``earlier`` holds the typed outputs of earlier stages by stage id (read
    them with :meth:`latest`); ``run`` is the run so far (outcome ``running``
    until the end; finalizers such as notify.webhook see the provisional
    outcome); ``prior_events`` holds this stage's journal events from an
    interrupted run being resumed (e.g. ``deploy_triggered``, so a deploy is
    never triggered twice); ``later`` holds the parameters of the stages after
    this one by stage id (``db.backup`` prepares the copy a later
    ``db.dry_run`` uses); ``diagnose`` adds Render's log lines explaining a
    failure to the run's report.
    """

    run_id: str
    stage_id: str
    stage_type: str
    pipeline_name: str
    pipeline_path: Path
    run_dir: Path
    resources: Resources
    earlier: Mapping[str, Outputs]
    run: Report
    emit: Callable[..., None]
    log: Any
    diagnose: Callable[[Diagnostic], None] = lambda diagnostic: None
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    now: Callable[[], datetime] = utcnow
    timeout_s: float | None = None
    prior_events: tuple[Mapping[str, Any], ...] = ()
    attempt: int = 1
    later: Mapping[str, Params] = field(default_factory=dict)

    @property
    def where(self) -> str:
        """How errors name this stage."""
        return f"stage {self.stage_id}"

    def prior(self, event: str, **match: Any) -> Mapping[str, Any] | None:
        """The newest ``event`` an interrupted process of this run journalled for this stage whose fields equal
        ``match`` (e.g. a request it sent before it was killed), else None."""
        return next((e for e in reversed(self.prior_events)
                     if e.get("event") == event and all(e.get(k) == v for k, v in match.items())), None)

    def latest(self, kind: type[OutputsT], where: Callable[[OutputsT], bool] | None = None) -> OutputsT | None:
        """The outputs of the most recent earlier stage whose outputs are a ``kind`` (and satisfy ``where``); the
        per-service outputs a stage lists in ``parts()`` (``render.release``'s deploys) count as its outputs too."""
        for outputs in reversed(list(self.earlier.values())):
            for candidate in (outputs, *getattr(outputs, "parts", tuple)()):
                if isinstance(candidate, kind) and (where is None or where(candidate)):
                    return candidate
        return None
