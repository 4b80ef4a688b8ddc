"""The Stage protocol, the context a stage runs in, and what it returns.

A stage *describes* its work from its parameters (``plan``) and *does* it in
``run`` through the collaborators of its :class:`StageContext` only (Render
client, HTTP client, sleep, clock, journal). A stage that changes something
also implements ``compensate``, which the runner calls in reverse order of
completion when a later stage fails.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:  # pragma: no cover
    from deploypipe.resources import Resources

__all__ = [
    "Compensation",
    "Params",
    "Stage",
    "StageContext",
    "StageResult",
    "utcnow",
]


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Params(BaseModel):
    """Base for every stage's parameter model: unknown keys are errors, values immutable.

    Give each field a ``Field(description=...)``: descriptions feed ``invoke plan``,
    the JSON Schema and the README's stage table.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class StageResult:
    """What a stage run produced.

    ``outputs`` is JSON-ready and visible to later stages as
    ``ctx.outputs[<stage id>]`` and in the report. ``changed_production`` says
    whether production was touched (it decides between exit 1 and exit 3 and
    whether ``compensate`` is due). ``deploys`` are ``{service, deploy_id,
    commit, status}`` records for the report; ``warnings`` are shown to the
    operator but do not fail the stage.
    """

    outputs: Mapping[str, Any] = field(default_factory=dict)
    changed_production: bool = False
    summary: str = ""
    warnings: tuple[str, ...] = ()
    deploys: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class Compensation:
    """What a compensation did: ``verified`` is False when it could not prove the result.

    ``action`` names what happened (e.g. ``rolled_back``, ``downgraded``,
    ``left_schema``, ``nothing_to_do``); ``details`` goes to the report's
    ``rollback`` section.
    """

    action: str
    verified: bool
    summary: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)
    deploys: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class StageContext:
    """Everything a stage may use, passed explicitly. No globals.

    ``outputs`` holds the outputs of earlier stages by stage id; ``prior_events``
    holds this stage's journal events from an interrupted run being resumed
    (e.g. a ``deploy_triggered`` event, so a deploy is never triggered twice).
    """

    run_id: str
    stage_id: str
    stage_type: str
    pipeline_name: str
    pipeline_path: Path
    run_dir: Path
    resources: "Resources"
    outputs: Mapping[str, Mapping[str, Any]]
    emit: Callable[..., None]
    log: Any
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    now: Callable[[], datetime] = utcnow
    timeout_s: float | None = None
    prior_events: tuple[Mapping[str, Any], ...] = ()
    dry_run: bool = False
    attempt: int = 1

    def deadline(self) -> float | None:
        """Absolute ``clock()`` value by which the stage should give up, if it has a timeout."""
        return None if self.timeout_s is None else self.clock() + self.timeout_s

    def output_of(self, stage_type: str) -> Mapping[str, Any] | None:
        """The outputs of the most recent earlier stage of ``stage_type`` (``outputs`` carry ``_type``)."""
        for outputs in reversed(list(self.outputs.values())):
            if outputs.get("_type") == stage_type:
                return outputs
        return None


@runtime_checkable
class Stage(Protocol):
    """A pipeline stage type, registered under ``type`` (``family.action``)."""

    type: ClassVar[str]
    description: ClassVar[str]
    Params: ClassVar[type[Params]]
    touches_production: ClassVar[bool]

    def plan(self, params: Any) -> str:
        """One line: what ``run`` would do with these params. No side effects."""
        ...

    def run(self, ctx: StageContext, params: Any) -> StageResult:
        """Do the work; raise StageFailed (a check said no) or StageErrored (could not run)."""
        ...

    # Optional, only for stages that change something:
    # def compensate(self, ctx: StageContext, params: Any, outputs: Mapping[str, Any]) -> Compensation: ...
