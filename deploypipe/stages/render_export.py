"""A Render Postgres export beside this run's own backup: requested first (Render makes its copy while ours is
made), then awaited with progress events."""

from __future__ import annotations

from deploypipe.core.polling import poll
from deploypipe.render.models import PostgresExport
from deploypipe.stages.context import StageContext

__all__ = ["RenderExport"]


class RenderExport:
    """A Render Postgres export, requested before the dump (Render makes its copy while ours is made), then awaited.

    Render answers 202 without an id, so the new export is the one listed that was not listed before.
    """

    def __init__(self, postgres_id: str, known: set[str], started: float):
        self.postgres_id, self.known, self.started = postgres_id, known, started

    @classmethod
    def start(cls, ctx: StageContext, database: str, warnings: list[str]) -> RenderExport | None:
        name = ctx.resources.targets.databases[database].render_postgres
        if not name:
            warnings.append("render_export: set targets.databases.<key>.render_postgres to export on Render")
            return None
        client = ctx.resources.render
        postgres = client.find_postgres(name)
        known = {e.id for e in client.list_postgres_exports(postgres.id)}
        client.create_postgres_export(postgres.id)
        ctx.emit("render_export_requested", postgres_id=postgres.id)
        return cls(postgres.id, known, ctx.clock())

    def wait(self, ctx: StageContext, timeout_s: float, warnings: list[str]) -> PostgresExport | None:
        client = ctx.resources.render

        def listed() -> PostgresExport | None:
            new = [e for e in client.list_postgres_exports(self.postgres_id) if e.id not in self.known]
            elapsed = ctx.clock() - self.started
            ctx.emit("db_progress", phase="render_export", done=len(new[:1]), total=1, unit="exports",
                     percent=100.0 if new else 0.0, elapsed_s=round(elapsed, 1), eta_s=None)
            return new[0] if new else None

        exported = poll(listed, timeout_s=timeout_s, interval_s=5.0, growth=1.5, max_interval_s=30.0,
                        clock=ctx.clock, sleep=ctx.sleep) if timeout_s > 0 else None
        if exported is not None:
            ctx.emit("render_export_listed", postgres_id=self.postgres_id, export_id=exported.id,
                     created_at=exported.created_at)
        elif timeout_s > 0:
            warnings.append(f"Render has not listed the export of {self.postgres_id} after {timeout_s:g}s; it may "
                            "still be running: check the database's Backups page (this run's backup does not need it)")
        return exported
