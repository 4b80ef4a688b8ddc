"""The one explicit registry of stage types (``family.action`` -> implementation), checked when imported.

Every stage class is listed here by hand. At import each one is checked
against the :class:`~deploypipe.stages.protocols.Stage` protocol and its
hooks: it declares ``Params`` and ``Outputs`` models, and a stage that touches
production (or has a point of no return) can compensate. A stage that breaks
these rules stops deploypipe from starting, not a deploy half-way.
"""

from __future__ import annotations

from pydantic import BaseModel

from deploypipe.stages.base import Outputs, Params
from deploypipe.stages.db import DbBackup, DbDryRun
from deploypipe.stages.db_checks import DbLint, DbMigrationStatus
from deploypipe.stages.db_migrate import DbMigrate
from deploypipe.stages.http import HttpCheck, VerifyHealth
from deploypipe.stages.lint import LintBlueprint
from deploypipe.stages.notify import NotifyWebhook
from deploypipe.stages.protocols import Compensating, Interruptible, Stage
from deploypipe.stages.render import RenderDeploy, RenderRollback
from deploypipe.stages.render_preflight import RenderPreflight
from deploypipe.stages.shell import ShellRun
from deploypipe.stages.traffic import VerifyTraffic
from deploypipe.stages.waves import RenderRelease

__all__ = ["STAGE_TYPES", "check_stage", "get_stage", "known_types"]

_CLASSES: tuple[type, ...] = (
    ShellRun, HttpCheck, VerifyHealth, RenderPreflight, RenderDeploy, RenderRollback, DbBackup, DbMigrationStatus,
    DbLint, DbDryRun, DbMigrate, LintBlueprint, NotifyWebhook, VerifyTraffic, RenderRelease,
)


def _model(cls: type, name: str, base: type[BaseModel]) -> list[str]:
    model = getattr(cls, name, None)
    if isinstance(model, type) and issubclass(model, base):
        return []
    return [f"{name} must be a subclass of {base.__module__}.{base.__name__}"]


def check_stage(cls: type) -> Stage:
    """An instance of ``cls`` after checking it keeps the Stage protocol and its hooks; TypeError otherwise."""
    problems = _model(cls, "Params", Params) + _model(cls, "Outputs", Outputs)
    for name, kind in (("type", str), ("description", str), ("touches_production", bool)):
        if not isinstance(getattr(cls, name, None), kind):
            problems.append(f"{name} must be a {kind.__name__} class attribute")
    stage = cls()
    if not isinstance(stage, Stage):
        problems.append("plan(params) and run(ctx, params) are required")
    if (getattr(cls, "touches_production", False) or isinstance(stage, Interruptible)) \
            and not isinstance(stage, Compensating):
        problems.append("a stage that can change production needs compensate(ctx, params, outputs)")
    if problems:
        raise TypeError(f"stage class {cls.__module__}.{cls.__name__}: " + "; ".join(problems))
    return stage


STAGE_TYPES: dict[str, Stage] = {}
for _cls in _CLASSES:
    _stage = check_stage(_cls)
    if _stage.type in STAGE_TYPES:
        raise TypeError(f"stage type {_stage.type} is registered twice")
    STAGE_TYPES[_stage.type] = _stage


def known_types() -> list[str]:
    return sorted(STAGE_TYPES)


def get_stage(type_name: str) -> Stage:
    """The stage registered for ``type_name`` (KeyError if unknown)."""
    return STAGE_TYPES[type_name]
