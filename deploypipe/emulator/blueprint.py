"""Read the subset of a Render Blueprint (render.yaml) the local Render runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from deploypipe.errors import SpecError
from deploypipe.yamlio import load_yaml

__all__ = ["Blueprint", "DatabaseDef", "EnvVarDef", "ServiceDef", "load_blueprint"]

log = structlog.get_logger("deploypipe.emulator")


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)


class EnvVarDef(_Lenient):
    key: str
    value: Any = None
    generateValue: bool = False
    sync: bool | None = None
    fromDatabase: dict[str, str] | None = None
    fromService: dict[str, str] | None = None


class ServiceDef(_Lenient):
    type: str
    name: str
    runtime: str = "python"
    repo: str | None = None
    branch: str = "main"
    rootDir: str = ""
    buildCommand: str = "true"
    startCommand: str = ""
    preDeployCommand: str | None = None
    healthCheckPath: str | None = None
    autoDeploy: bool | None = None
    autoDeployTrigger: str | None = None
    envVars: list[EnvVarDef] = Field(default_factory=list)
    region: str = "oregon"
    plan: str = "starter"


class DatabaseDef(_Lenient):
    name: str
    databaseName: str | None = None
    user: str | None = None
    postgresMajorVersion: str | int | None = None
    plan: str = "basic-256mb"
    region: str = "oregon"


class Blueprint(_Lenient):
    services: list[ServiceDef] = Field(default_factory=list)
    databases: list[DatabaseDef] = Field(default_factory=list)


def load_blueprint(path: Path | str) -> Blueprint:
    loaded = load_yaml(path)
    if not isinstance(loaded.data, dict):
        raise SpecError("expected a Blueprint mapping with services and databases", where=loaded.where(()))
    try:
        blueprint = Blueprint.model_validate(loaded.data)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = tuple(error["loc"])
        raise SpecError(f"{'.'.join(map(str, loc))}: {error['msg']}", where=loaded.where(loc)) from None
    for service in blueprint.services:
        unknown = sorted(set(service.model_extra or {}) - {"numInstances", "scaling", "domains", "disk", "buildFilter",
                                                            "maxShutdownDelaySeconds", "dockerfilePath", "dockerContext"})
        if unknown:
            log.warning("blueprint_fields_ignored", service=service.name, fields=unknown)
    return blueprint
