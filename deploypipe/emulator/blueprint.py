"""Read the subset of a Render Blueprint (render.yaml) the local Render runs; warn about what it ignores."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from deploypipe.core.yamlio import load_yaml
from deploypipe.errors import SpecError

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
    schedule: str | None = None  # cron jobs: a cron expression (UTC)
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
    _warn_ignored(blueprint)
    return blueprint


# Render Blueprint fields the local Render accepts but has no use for (one instance, no disks, no domains...).
_QUIET = {"numInstances", "scaling", "domains", "disk", "buildFilter", "maxShutdownDelaySeconds", "dockerfilePath",
          "dockerContext", "plan", "region", "previewPlan", "previewDiskSizeGB", "diskSizeGB", "ipAllowList",
          "highAvailability", "readReplicas", "postgresMajorVersion"}


def _warn_ignored(blueprint: Blueprint) -> None:
    top = sorted(set(blueprint.model_extra or {}))
    if top:
        log.warning("blueprint_fields_ignored", where="top level", fields=top,
                    hint="the local Render runs top-level services and databases only")
    for kind, items in (("service", blueprint.services), ("database", blueprint.databases)):
        for item in items:
            unknown = sorted(set(item.model_extra or {}) - _QUIET)
            if unknown:
                log.warning("blueprint_fields_ignored", where=f"{kind} {item.name}", fields=unknown)
    for service in blueprint.services:
        for var in service.envVars:
            if var.fromService or (var.model_extra or {}).get("fromGroup") or var.sync is False:
                log.warning("blueprint_env_var_unset", service=service.name, key=var.key,
                            hint="fromService, fromGroup and sync: false are not resolved by the local Render")
