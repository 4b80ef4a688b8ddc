"""What a pipeline deploys to: Render services and databases, named by a key stages refer to."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from deploypipe.spec.waves import plan_waves

__all__ = ["KINDS_WITHOUT_URL", "DatabaseTarget", "ServiceKind", "ServiceTarget", "Targets"]

ServiceKind = Literal["web", "private", "worker", "cron"]
#: kinds Render gives no public URL: verified from Render's events and logs, never by HTTP
KINDS_WITHOUT_URL: tuple[str, ...] = ("private", "worker", "cron")


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServiceTarget(_Frozen):
    """A Render service, found by ``id`` (preferred) or by ``name``."""

    name: str | None = Field(None, description="Render service name (used to find the service when no id is given).")
    id: str | None = Field(None, description="Render service id, e.g. srv-abc123. Preferred over name.")
    url: str | None = Field(
        None, description="Base URL health checks use; default: the service's URL as Render reports it."
    )
    health_path: str = Field("/health", description="Path of the health endpoint on the service.")
    repo_dir: str = Field(".", description="Local git checkout whose HEAD is deployed when no commit is given.")
    kind: ServiceKind = Field(
        "web", description="web (a public URL), private (a private service), worker (a background worker) or cron "
                           "(a cron job). Decides how a release of it is verified; a stage that needs a URL is "
                           "refused at load time for the kinds without one.")
    depends_on: list[str] = Field(
        default_factory=list, description="Service target keys released before this one (render.release waves).")

    @model_validator(mode="after")
    def _needs_name_or_id(self) -> ServiceTarget:
        if not (self.name or self.id):
            raise ValueError("a service needs 'name' or 'id'")
        return self

    @property
    def ref(self) -> str:
        """How to name this service in messages."""
        return self.name or self.id or "?"


class DatabaseTarget(_Frozen):
    """A PostgreSQL database; ``url`` is a secret and is masked everywhere."""

    url: str = Field(..., description="Connection URL (postgresql://...). Usually ${DATABASE_URL}; always masked.")
    render_postgres: str | None = Field(
        None, description="Render Postgres name or id (dpg-...), for Render exports and recovery info."
    )
    production: bool = Field(True, description="Whether this database is production (guards restores).")
    mode: Literal["dump", "pitr", "auto"] = Field(
        "dump", description="Safety path of db.backup/db.dry_run/db.migrate: dump (pg_dump, restored for the dry run), "
                            "pitr (Render point-in-time recovery of render_postgres: a restore point and a clone, "
                            "which bills while it exists), or auto (pitr above pitr_above_gb, else dump)."
    )
    pitr_above_gb: float | None = Field(
        None, gt=0, validate_default=True,
        description="mode auto: above this pg_database_size (GB) when the run starts, take pitr; else dump."
    )
    pitr_min_age_s: float = Field(
        600.0, ge=0, description="How recent a restore time Render accepts (Render: 600 s; the local Render's "
                                 "--recovery-min-age-s may be 0)."
    )

    @field_validator("mode")
    @classmethod
    def _pitr_needs_render_postgres(cls, value: str, info: ValidationInfo) -> str:
        if value != "dump" and not info.data.get("render_postgres"):
            raise ValueError("'dump' unless render_postgres names the Render Postgres whose point-in-time recovery "
                             "to use")
        return value

    @field_validator("pitr_above_gb")
    @classmethod
    def _threshold_only_with_auto(cls, value: float | None, info: ValidationInfo) -> float | None:
        mode = info.data.get("mode")
        if mode == "auto" and value is None:
            raise ValueError("a size in GB with mode auto (above it, Render's point-in-time recovery replaces "
                             "pg_dump)")
        if mode in ("dump", "pitr") and value is not None:
            raise ValueError("no value unless mode is auto")
        return value


class Targets(_Frozen):
    services: dict[str, ServiceTarget] = Field(default_factory=dict, description="Render services by key.")
    databases: dict[str, DatabaseTarget] = Field(default_factory=dict, description="Databases by key.")

    @model_validator(mode="after")
    def _dependencies_are_known(self) -> Targets:
        for key, target in self.services.items():
            unknown = [name for name in target.depends_on if name not in self.services or name == key]
            if unknown:
                raise ValueError(f"services.{key}.depends_on: unknown service target '{unknown[0]}'; expected one "
                                 f"of: {', '.join(k for k in sorted(self.services) if k != key) or 'none'}")
        plan_waves(list(self.services), {k: t.depends_on for k, t in self.services.items()})
        return self
