"""Collaborators shared by the stages of one run: built once, passed in the StageContext.

Everything with a side effect that a stage needs comes from here, so tests can
hand in an ``httpx.Client`` bound to the in-process emulator, a recording
``sleep`` or a fixed clock.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from deploypipe.redact import Redactor

if TYPE_CHECKING:  # pragma: no cover
    import httpx

    from deploypipe.render.client import RenderClient

__all__ = ["Resources"]


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
    targets: Any = None
    render_factory: Callable[[], "RenderClient"] | None = None
    http_factory: Callable[[], "httpx.Client"] | None = None
    confirm: Callable[[str], bool] = lambda question: False
    interactive: bool = False
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    redactor: Redactor = field(default_factory=Redactor)
    _render: Any = field(default=None, repr=False)
    _http: Any = field(default=None, repr=False)

    @property
    def render(self) -> "RenderClient":
        if self._render is None:
            if self.render_factory is None:
                from deploypipe.render.client import RenderClient

                self._render = RenderClient.from_env(self.env, sleep=self.sleep, clock=self.clock)
            else:
                self._render = self.render_factory()
        return self._render

    @property
    def http(self) -> "httpx.Client":
        if self._http is None:
            if self.http_factory is None:
                import httpx

                self._http = httpx.Client(timeout=httpx.Timeout(10.0, connect=5.0), follow_redirects=False)
            else:
                self._http = self.http_factory()
        return self._http

    def close(self) -> None:
        for client in (self._render, self._http):
            if client is not None:
                client.close()
        self._render = self._http = None
