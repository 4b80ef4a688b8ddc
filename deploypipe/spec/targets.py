"""What a pipeline deploys to: Render services and databases, named by a key stages refer to."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["DatabaseTarget", "ServiceTarget", "Targets"]


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


class Targets(_Frozen):
    services: dict[str, ServiceTarget] = Field(default_factory=dict, description="Render services by key.")
    databases: dict[str, DatabaseTarget] = Field(default_factory=dict, description="Databases by key.")
