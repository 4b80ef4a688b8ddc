"""Fixtures for the backup, dry-run, migrate and command tests: a real embedded PostgreSQL and Alembic projects.

Registered by conftest.py; test modules import its helpers (``from dbfixtures import sql``).
"""

from __future__ import annotations

import itertools
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import psycopg
import pytest

from deploypipe.core.embedded_pg import EmbeddedPostgres, start_embedded
from deploypipe.testing import FakeClock

__all__ = ["AlembicProject", "Sleeps", "StageRunner", "alembic_project", "new_db", "pg_server", "sql"]

_counter = itertools.count()

ENV_PY = '''
import os
from alembic import context
from sqlalchemy import create_engine, pool


def _url():
    url = os.environ["DATABASE_URL"]
    return url.replace("postgresql://", "postgresql+psycopg://", 1) if url.startswith("postgresql://") else url


if context.is_offline_mode():
    context.configure(url=_url(), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()
else:
    engine = create_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, transaction_per_migration=False)
        with context.begin_transaction():
            context.run_migrations()
'''

INI = """[alembic]
script_location = migrations

[loggers]
keys = root
[handlers]
keys = console
[formatters]
keys = generic
[logger_root]
level = WARNING
handlers = console
[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic
[formatter_generic]
format = %(levelname)-5.5s [%(name)s] %(message)s
"""


@dataclass
class AlembicProject:
    """An Alembic project in a temp dir: alembic.ini, env.py reading DATABASE_URL, versions/."""

    root: Path

    @property
    def ini(self) -> Path:
        return self.root / "alembic.ini"

    def revision(self, rev: str, down: str | None, upgrade: str, downgrade: str = "pass", header: str = "") -> Path:
        body = (f'"""revision {rev}"""\nfrom alembic import op\nimport sqlalchemy as sa\n{textwrap.dedent(header)}\n'
                f"revision = {rev!r}\ndown_revision = {down!r}\nbranch_labels = None\ndepends_on = None\n\n\n"
                f"def upgrade():\n{textwrap.indent(textwrap.dedent(upgrade).strip(), '    ')}\n\n\n"
                f"def downgrade():\n{textwrap.indent(textwrap.dedent(downgrade).strip(), '    ')}\n")
        path = self.root / "migrations" / "versions" / f"{rev}.py"
        path.write_text(body, encoding="utf-8")
        return path

    @property
    def upgrade(self) -> str:
        return f"{sys.executable} -m alembic upgrade head"

    @property
    def downgrade(self) -> str:
        return f"{sys.executable} -m alembic downgrade {{revision}}"


@pytest.fixture
def alembic_project(tmp_path: Path) -> AlembicProject:
    root = tmp_path / "app"
    (root / "migrations" / "versions").mkdir(parents=True)
    (root / "alembic.ini").write_text(INI, encoding="utf-8")
    (root / "migrations" / "env.py").write_text(ENV_PY, encoding="utf-8")
    (root / "migrations" / "script.py.mako").write_text("", encoding="utf-8")
    return AlembicProject(root)


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> EmbeddedPostgres:
    server = start_embedded(tmp_path_factory.mktemp("db-tests-pg"))
    yield server
    server.stop()


@pytest.fixture
def new_db(pg_server: EmbeddedPostgres) -> Callable[[str], str]:
    """Creates a fresh database per call (unique name); returns its URL."""

    def make(prefix: str = "db") -> str:
        return pg_server.create_database(f"{prefix}_{next(_counter)}_{id(pg_server) % 1000}")

    return make


def sql(url: str, statement: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(statement, params or None)
        return cur.fetchall() if cur.description else []


Sleeps = FakeClock  # waits recorded, clock advanced, nothing slept


@dataclass
class StageRunner:
    """Runs stages with a hand-built StageContext; keeps outputs by stage id and the emitted events.

    One Resources serves every stage (as in a run), so what db.backup holds for a later db.dry_run reaches it;
    ``later`` names the stages that will follow (stage id -> (stage class, params)).
    """

    root: Path
    databases: dict[str, str]
    env: dict[str, str]
    confirm: Callable[[str], bool] = lambda question: False
    outputs: dict[str, Any] = field(default_factory=dict)
    events: list[dict] = field(default_factory=list)
    run_id: str = "run-0001"
    _resources: Any = None

    @property
    def resources(self) -> Any:
        if self._resources is None:
            from deploypipe.spec.targets import DatabaseTarget, Targets
            from deploypipe.stages.context import Resources

            targets = Targets(databases={k: DatabaseTarget(url=u) for k, u in self.databases.items()})
            self._resources = Resources(project_dir=self.root, state_dir=self.root / ".deploypipe", env=self.env,
                                        targets=targets, confirm=self.confirm)
        return self._resources

    def context(self, stage_id: str, stage_type: str, sleep: Callable[[float], None] | None = None,
                clock: Callable[[], float] | None = None, later: dict[str, Any] | None = None):
        import time

        from deploypipe.testing import stage_context

        return stage_context(self.resources, stage_id=stage_id, stage_type=stage_type, run_id=self.run_id,
                             run_dir=self.root / ".deploypipe" / "runs" / self.run_id, earlier=self.outputs,
                             emit=lambda event, **fields: self.events.append({"event": event, **fields}),
                             sleep=sleep or time.sleep, clock=clock or time.monotonic, later=later)

    def run(self, stage_id: str, stage_cls: type, later: dict[str, tuple[type, dict]] | None = None, **params):
        stage = stage_cls()
        parsed = stage_cls.Params(**params)
        planned = {i: cls.Params(**p) for i, (cls, p) in (later or {}).items()}
        result = stage.run(self.context(stage_id, stage_cls.type, later=planned), parsed)
        self.outputs[stage_id] = result.outputs
        return result

    def close(self) -> None:
        """Close what the run holds (a staging copy db.backup kept for a dry run that never came)."""
        if self._resources is not None:
            self._resources.close()

    def compensate(self, stage_id: str, stage_cls: type, outputs: Any, **params):
        return stage_cls().compensate(self.context(stage_id, stage_cls.type), stage_cls.Params(**params), outputs)
