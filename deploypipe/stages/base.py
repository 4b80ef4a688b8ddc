"""The typed values a stage takes and gives back: Params, Outputs, StageResult, Compensation, DeployRecord.

Each stage type declares two frozen models: ``Params`` (what the YAML
``with:`` block may say) and ``Outputs`` (what later stages, ``when``
expressions and the report can read). The protocols stages implement are in
:mod:`deploypipe.stages.protocols`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Mapping, TypeVar

from pydantic import BaseModel, ConfigDict

__all__ = ["Compensation", "DeployRecord", "NoOutputs", "Outputs", "Params", "Restored", "ServiceRelease",
           "StageResult"]


class Params(BaseModel):
    """Base for every stage's parameter model: unknown keys are errors, values immutable.

    Give each field a ``Field(description=...)``: descriptions feed ``invoke plan``,
    the JSON Schema and the README's stage table.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)


class Outputs(BaseModel):
    """Base for every stage's outputs: typed, immutable, JSON-ready; read by later stages and ``when``."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoOutputs(Outputs):
    """For a stage whose only result is that it succeeded."""


class ServiceRelease(Outputs):
    """Outputs of a stage that made a release of a service live: which service, deploy and commit, and where.

    ``created_at`` is when Render created the deploy (its new instance's logs start then); ``live_at`` when it
    went live (the switch a traffic analysis measures from); ``previous_deploy_id`` the deploy that was live before
    it, None when the service had none (its first release).
    """

    service: str
    service_id: str
    deploy_id: str | None = None
    commit: str | None = None
    url: str | None = None
    created_at: datetime | None = None
    live_at: datetime | None = None
    previous_deploy_id: str | None = None
    previous_commit: str | None = None


class DeployRecord(BaseModel):
    """One deploy as the report shows it."""

    model_config = ConfigDict(frozen=True)

    service: str
    deploy_id: str | None
    commit: str | None = None
    status: str | None = None


OutputsT = TypeVar("OutputsT", bound=Outputs)


@dataclass(frozen=True)
class StageResult(Generic[OutputsT]):
    """What a stage run produced.

    ``changed_production`` says whether production was touched (it decides
    between exit 1 and exit 3 and whether ``compensate`` is due); ``warnings``
    are shown to the operator but do not fail the stage; a ``caveat`` limits
    what the run may claim (e.g. "inconclusive: 3 requests": the release was
    not verified on traffic) and goes into the run's final message.
    """

    outputs: OutputsT
    changed_production: bool = False
    summary: str = ""
    warnings: tuple[str, ...] = ()
    deploys: tuple[DeployRecord, ...] = ()
    caveat: str = ""


@dataclass(frozen=True)
class Restored:
    """A service a compensation put back on an earlier release (the health re-verification checks it)."""

    service: str
    commit: str | None


@dataclass(frozen=True)
class Compensation:
    """What a compensation did: ``verified`` is False when it could not prove the result.

    ``action`` names what happened (``rolled_back``, ``downgraded``,
    ``left_schema``, ``nothing_to_do``, ...); ``restored`` names the service
    release it brought back, so the runner re-verifies its health; ``details``
    are shown in the report's rollback section and never read back by code.
    """

    action: str
    verified: bool
    summary: str = ""
    restored: Restored | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    deploys: tuple[DeployRecord, ...] = ()
