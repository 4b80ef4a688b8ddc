"""Read the subset of a Render Blueprint (render.yaml) the local Render runs; warn about what it ignores.

``fromService`` is resolved as Render resolves it: ``property`` ``host``, ``port`` or ``hostport`` of a web or
private service (here its stable URL on 127.0.0.1, the local Render's private network), or ``envVarKey``: the value
of one of that service's own env vars (a ``value``, ``generateValue`` or ``fromDatabase``; the local Render copies
one level, so an ``envVarKey`` that is itself ``fromService`` stays unset, with a warning).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit

import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from deploypipe.core.yamlio import load_yaml
from deploypipe.errors import SpecError

__all__ = ["SERVICE_PROPERTIES", "Blueprint", "DatabaseDef", "EnvVarDef", "ServiceDef", "from_service",
           "load_blueprint"]

log = structlog.get_logger("deploypipe.emulator")


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)


class EnvVarDef(_Lenient):
    key: str = ""  # none for ``fromGroup``
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
            group = (var.model_extra or {}).get("fromGroup")
            if group or var.sync is False:
                log.warning("blueprint_env_var_unset", service=service.name,
                            **({"group": group} if group else {"key": var.key}),
                            hint="fromGroup and sync: false are not resolved by the local Render")


#: what ``fromService.property`` names on Render (``connectionString`` is Key Value's, which the local Render lacks)
SERVICE_PROPERTIES = ("host", "port", "hostport")
#: service types with an address on the private network
_ADDRESSED = ("web", "pserv")


def from_service(ref: Mapping[str, Any], services: Mapping[str, tuple[ServiceDef, str]]
                 ) -> str | tuple[ServiceDef, EnvVarDef]:
    """A ``fromService`` entry: the ``property``'s value, or (service, its env var) for ``envVarKey``, resolved by
    the caller as that service's own; ``services`` maps each name to (definition, stable URL). ValueError naming
    the problem."""
    name = str(ref.get("name"))
    if name not in services:
        raise ValueError(f"no service '{name}' in the Blueprint; expected one of: {', '.join(sorted(services))}")
    spec, url = services[name]
    if ref.get("type") and ref["type"] != spec.type:
        raise ValueError(f"service '{name}' is of type {spec.type}, not {ref['type']}")
    if ref.get("envVarKey"):
        var = next((v for v in spec.envVars if v.key == ref["envVarKey"]), None)
        if var is None or var.fromService:
            problem = "has no env var" if var is None else "gets from another service its env var"
            raise ValueError(f"service '{name}' {problem} {ref['envVarKey']}")
        return spec, var
    prop = ref.get("property")
    if prop not in SERVICE_PROPERTIES:
        raise ValueError(f"property {prop!r} is not one of {', '.join(SERVICE_PROPERTIES)} (or use envVarKey)")
    parts = urlsplit(url)
    if spec.type not in _ADDRESSED or not parts.hostname or not parts.port:
        raise ValueError(f"service '{name}' ({spec.type}) has no address on the private network")
    return {"host": parts.hostname, "port": str(parts.port), "hostport": f"{parts.hostname}:{parts.port}"}[prop]
