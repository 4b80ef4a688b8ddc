"""The Stage protocol and its optional hooks, which the registry checks for every stage type at import.

A stage *describes* its work from its parameters (``plan``) and *does* it in
``run`` through the collaborators of its :class:`StageContext` only. Optional
hooks are protocols of their own; callers test for them with ``isinstance``:

    Compensating        compensate(ctx, params, outputs) -> Compensation   (required when touches_production)
    VerifiesRollback    verify_after_rollback(ctx, params, restored) -> Compensation | None
    Interruptible       point_of_no_return + outputs_from_event(event): what a run killed mid-stage changed
"""

from __future__ import annotations

import builtins
from typing import Any, ClassVar, Mapping, Protocol, runtime_checkable

from deploypipe.stages.base import Compensation, Outputs, Params, Restored, StageResult
from deploypipe.stages.context import StageContext

__all__ = ["Compensating", "Interruptible", "Stage", "VerifiesRollback"]


@runtime_checkable
class Stage(Protocol):
    """A pipeline stage type, registered under ``type`` (``family.action``)."""

    type: ClassVar[str]
    description: ClassVar[str]
    Params: ClassVar[builtins.type[Params]]
    Outputs: ClassVar[builtins.type[Outputs]]
    touches_production: ClassVar[bool]

    def plan(self, params: Any) -> str:
        """One line: what ``run`` would do with these params. No side effects."""
        ...

    def run(self, ctx: StageContext, params: Any) -> StageResult[Any]:
        """Do the work; raise StageFailed (a check said no) or StageErrored (could not run)."""
        ...


@runtime_checkable
class Compensating(Protocol):
    """A stage that can undo what it changed; the runner calls it in reverse order of completion."""

    def compensate(self, ctx: StageContext, params: Any, outputs: Any) -> Compensation: ...


@runtime_checkable
class VerifiesRollback(Protocol):
    """A stage that can prove a rolled-back release serves again (e.g. verify.health)."""

    def verify_after_rollback(self, ctx: StageContext, params: Any,
                              restored: Mapping[str, Restored]) -> Compensation | None: ...


@runtime_checkable
class Interruptible(Protocol):
    """A stage with a point of no return inside ``run`` (e.g. a deploy was triggered).

    Its journal event ``point_of_no_return`` carries what ``compensate`` needs,
    so ``rollback --run`` can undo a run that was killed in the middle of it.
    """

    point_of_no_return: ClassVar[str]

    def outputs_from_event(self, event: Mapping[str, Any]) -> Outputs: ...
