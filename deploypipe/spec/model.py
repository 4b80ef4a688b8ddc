"""The pipeline format as immutable pydantic models (the JSON Schema comes from here)."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from deploypipe.spec.targets import Targets

__all__ = ["Defaults", "LocalSpec", "LockSpec", "Pipeline", "RetrySpec", "StageSpec", "TrafficRequest", "TrafficSpec",
           "VariableSpec"]

STAGE_ID = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
STAGE_TYPE = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class RetrySpec(_Frozen):
    """How often a stage is retried when it fails for a transient reason (exponential backoff with jitter)."""

    attempts: int = Field(1, ge=1, le=20, description="Total attempts, including the first.")
    backoff_s: float = Field(1.0, ge=0, le=600, description="First wait between attempts, doubled each time.")
    max_backoff_s: float = Field(30.0, ge=0, le=3600, description="Upper bound for one wait.")


class Defaults(_Frozen):
    retry: RetrySpec = Field(default_factory=RetrySpec, description="Retry policy for stages that set none.")
    timeout_s: float | None = Field(1800.0, gt=0, description="Time budget of a stage that sets none.")


class VariableSpec(_Frozen):
    """An environment variable the pipeline uses; ``secret`` values are masked everywhere."""

    description: str = ""
    default: str | None = Field(None, description="Value when the environment does not set it.")
    secret: bool = Field(False, description="Mask the value in logs, reports, journals and errors.")


class LockSpec(_Frozen):
    key: str | None = Field(None, description="Lock name; default: the pipeline name. One deploy at a time per key.")
    wait_s: float = Field(0.0, ge=0, description="How long a second run waits for the lock before giving up.")


class TrafficRequest(_Frozen):
    """One kind of request in the local default's traffic mix."""

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "GET"
    path: str = Field(..., pattern=r"^/", description="Path on the service, e.g. /notes.")
    weight: float = Field(1.0, gt=0, description="Relative share of the mix.")
    json_body: Any = Field(None, alias="json", description="JSON body to send.")

    @property
    def json(self) -> Any:
        return self.json_body


class TrafficSpec(_Frozen):
    """Steady, bounded loopback traffic the local default sends to a service while it runs."""

    service: str = Field(..., description="Blueprint service (its stable URL on 127.0.0.1) to send traffic to.")
    rate_per_s: float = Field(4.0, gt=0, le=50, description="Mean requests per second (Poisson arrivals).")
    max_s: float = Field(600.0, gt=0, le=3600, description="Stop after this long.")
    max_requests: int = Field(5000, ge=1, le=100_000, description="Stop after this many requests.")
    requests: list[TrafficRequest] = Field(..., min_length=1, description="The mix.")


class LocalSpec(_Frozen):
    """The embedded local default: an embedded PostgreSQL as production and the local Render on loopback."""

    blueprint: str = Field("render.yaml", description="Blueprint the local Render runs.")
    app_dirs: list[str] = Field(
        default_factory=list,
        description="Paths copied beside the Blueprint into the local git repository Render builds."
    )
    database: str | None = Field(None, description="Blueprint database that plays production (default: the "
                                                   "Blueprint's only database).")
    traffic: TrafficSpec | None = Field(None,
                                        description="Traffic to send while the pipeline runs (for verify.traffic).")


class StageSpec(_Frozen):
    id: str = Field(..., description="Unique stage id (lower case, digits, '-' and '_').")
    type: str = Field(..., description="Stage type, family.action (see `invoke plan --types`).")
    with_: dict[str, Any] = Field(default_factory=dict, alias="with", description="The stage's own parameters.")
    description: str = ""
    retry: RetrySpec | None = Field(None, description="Overrides defaults.retry.")
    timeout_s: float | None = Field(None, gt=0, description="Overrides defaults.timeout_s.")
    when: str = Field(
        "on_success",
        description="on_success (default), on_failure, always, or an expression over earlier stages' outputs "
        "such as `status.pending_count > 0` or `not backup.verified` (`invoke plan --types` lists each type's "
        "outputs).",
    )
    on_failure: Literal["rollback", "stop", "continue"] = Field(
        "rollback",
        description="rollback: undo earlier stages that changed production; stop: stop without undoing; "
        "continue: record the failure and go on.",
    )

    @field_validator("id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        if not STAGE_ID.match(value):
            raise ValueError("expected lower case letters, digits, '-' or '_', starting with a letter")
        return value

    @field_validator("type")
    @classmethod
    def _type_shape(cls, value: str) -> str:
        if not STAGE_TYPE.match(value):
            raise ValueError("expected family.action, e.g. render.deploy")
        return value


class Pipeline(_Frozen):
    """A deploy pipeline: targets plus an ordered list of stages."""

    version: Literal[1] = Field(..., description="Format version; always 1.")
    name: str = Field(..., min_length=1, description="Pipeline name (used for locks and reports).")
    description: str = ""
    variables: dict[str, VariableSpec] = Field(default_factory=dict, description="Environment variables used.")
    targets: Targets = Field(default_factory=Targets)
    defaults: Defaults = Field(default_factory=Defaults)
    lock: LockSpec = Field(default_factory=LockSpec)
    local: LocalSpec | None = Field(None, description="Run against the embedded local default (no Render account).")
    stages: list[StageSpec] = Field(..., min_length=1, description="Stages, run in order.")
