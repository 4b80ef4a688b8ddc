"""The changes each replay makes (bad ones, and the healthy one of flaky-endpoint): commits in the local repository
and state in local production."""

from __future__ import annotations

import re
from typing import Any, Callable

__all__ = ["BAD_CHANGES", "MIGRATION_HEADER", "PRISMA_INIT_SQL", "PRISMA_MIGRATION"]

APP = "examples/sampleapp"
MIGRATIONS = f"{APP}/migrations/versions"
PRISMA_MIGRATION = "20251017171256_init"
PRISMA_INIT_SQL = """-- CreateTable
CREATE TABLE "users" (
    "id" TEXT NOT NULL,
    "email" TEXT NOT NULL,
    CONSTRAINT "users_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "users_email_key" ON "users"("email");
"""

MIGRATION_HEADER = '''"""{title}

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None
'''

PGVECTOR = MIGRATION_HEADER.format(title="enable pgvector (pinned, as generated on a dev machine)") + '''

def upgrade() -> None:
    op.execute('CREATE EXTENSION IF NOT EXISTS "vector" WITH VERSION \\'0.5.1\\'')
    op.add_column("notes", sa.Column("embedding_model", sa.Text, nullable=True))


def downgrade() -> None:
    op.drop_column("notes", "embedding_model")
'''

UNIQUE_BODY = MIGRATION_HEADER.format(title="notes bodies are unique") + '''

def upgrade() -> None:
    op.create_index("ix_notes_body_unique", "notes", ["body"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_notes_body_unique", table_name="notes")
'''

MONKEYPATCH = MIGRATION_HEADER.format(title="add tags, with 'safe' operation wrappers") + '''

_original_create_index = op.create_index


def _safe_create_index(name, table, columns, **kwargs):
    try:
        _original_create_index(name, table, columns, **kwargs)
    except Exception:  # "safe": swallow the failure and carry on
        pass


op.create_index = _safe_create_index  # every later op.create_index goes through the wrapper


def upgrade() -> None:
    op.create_index("ix_notes_legacy", "notes", ["legacy_category"])  # that column does not exist: fails, swallowed
    op.add_column("notes", sa.Column("tag", sa.Text, nullable=True))  # -> current transaction is aborted


def downgrade() -> None:
    op.drop_column("notes", "tag")
'''


DROP_AUTHOR = MIGRATION_HEADER.format(title="drop notes.author: the release's code no longer reads it") + '''

def upgrade() -> None:
    op.drop_column("notes", "author")


def downgrade() -> None:
    op.add_column("notes", sa.Column("author", sa.Text, nullable=True))
'''

RENAME_AUTHOR = MIGRATION_HEADER.format(title="rename notes.author to written_by, in one step") + '''
# deploypipe: expand (reason: the app reads the new name in the same release)


def upgrade() -> None:
    op.alter_column("notes", "author", new_column_name="written_by")


def downgrade() -> None:
    op.alter_column("notes", "written_by", new_column_name="author")
'''


def _author_column(name: str | None) -> Callable[[str], str]:
    """The sample app reading and writing notes' author as column ``name`` (None: not at all)."""
    def transform(app_source: str) -> str:
        if name is None:
            return app_source.replace("select id, body, author, created_at from notes", "select id, body, created_at "
                                      "from notes").replace(
                '[{"id": r[0], "body": r[1], "author": r[2], "created_at": r[3].isoformat()} for r in rows]',
                '[{"id": r[0], "body": r[1], "created_at": r[2].isoformat()} for r in rows]').replace(
                '"insert into notes (body, author) values (%s, %s) returning id", (body, author)',
                '"insert into notes (body) values (%s) returning id", (body,)')
        return app_source.replace("select id, body, author, created_at from notes",
                                  f"select id, body, {name}, created_at from notes").replace(
            "insert into notes (body, author)", f"insert into notes (body, {name})")
    return transform


def _broken_app(app_source: str) -> str:
    """Seed 003: a helper removed in a refactor is still used: every request but /health answers 500."""
    return app_source.replace(
        "async def index(request: Request) -> JSONResponse:\n",
        "async def index(request: Request) -> JSONResponse:\n"
        "    with_retry(\"index\")  # removed from the codebase in the refactor\n",
    ).replace(
        "async def notes(request: Request) -> JSONResponse:\n",
        "async def notes(request: Request) -> JSONResponse:\n"
        "    with_retry(\"notes\")  # removed from the codebase in the refactor\n",
    )


def _partial_outage(app_source: str) -> str:
    """Seed 003's shape, narrower: one route (POST /notes) calls a removed helper; /health and GETs stay green."""
    return app_source.replace(
        "            note_id = await run_in_threadpool(_add_note, body, author)\n",
        "            note_id = await run_in_threadpool(add_note_with_audit, body, author)  # removed in the refactor\n",
    )


def _next_version(app_source: str) -> str:
    """A healthy release: only the app's VERSION changes (its patch number goes up)."""
    return re.sub(r'^VERSION = "(\d+)\.(\d+)\.(\d+)"$',
                  lambda m: f'VERSION = "{m[1]}.{m[2]}.{int(m[3]) + 1}"', app_source, count=1, flags=re.MULTILINE)


def _slow_notes(app_source: str) -> str:
    """Issue 17: listing notes now waits 600 ms on the database (a per-request audit query); nothing answers 5xx."""
    return app_source.replace(
        '        rows = conn.execute("select id, body, author, created_at from notes order by id desc limit 50")'
        '.fetchall()\n',
        '        conn.execute("select pg_sleep(0.6)")  # the new audit lookup, once per listing\n'
        '        rows = conn.execute("select id, body, author, created_at from notes order by id desc limit 50")'
        '.fetchall()\n',
    )


def _crashing_worker(worker_source: str) -> str:
    """Seed 003's removed helper in the worker: its first digest, one interval (5 s) after it starts, raises."""
    return worker_source.replace(
        "        time.sleep(interval_s)\n",
        "        time.sleep(interval_s)\n"
        "        send_digest(count)  # removed from the codebase in the refactor\n",
    )


BAD_CHANGES: dict[str, dict[str, Any]] = {
    "pgvector-version": {"files": {f"{MIGRATIONS}/0003_enable_pgvector.py": PGVECTOR},
                         "message": "Add pgvector (migration generated locally with VERSION 0.5.1)"},
    "data-dependent-migration": {"files": {f"{MIGRATIONS}/0003_unique_note_body.py": UNIQUE_BODY},
                                 "message": "Make note bodies unique",
                                 "production_sql": "insert into notes (body) values ('duplicate'), ('duplicate')",
                                 "cleanup_sql": "delete from notes where body = 'duplicate'"},
    "transaction-cascade": {"files": {f"{MIGRATIONS}/0003_tags_with_safe_wrappers.py": MONKEYPATCH},
                            "message": "Add tags; wrap op.* in safe helpers"},
    "broken-release": {"transform": {f"{APP}/app.py": _broken_app},
                       "message": "Phase 2: remove the retry wrapper layer"},
    "partial-outage": {"transform": {f"{APP}/app.py": _partial_outage},
                       "message": "Phase 3: drop the audit helpers"},
    "drop-column": {"files": {f"{MIGRATIONS}/0003_drop_author.py": DROP_AUTHOR},
                    "transform": {f"{APP}/app.py": _author_column(None)},
                    "message": "Notes have no author any more: drop the column and stop reading it",
                    "cleanup_sql": "alter table notes add column if not exists author text; "
                                   "update alembic_version set version_num = '0002' where version_num = '0003'"},
    "rename-column": {"files": {f"{MIGRATIONS}/0003_rename_author.py": RENAME_AUTHOR},
                      "transform": {f"{APP}/app.py": _author_column("written_by")},
                      "message": "Rename notes.author to written_by (migration and code in one release)",
                      "cleanup_sql": "do $$ begin if exists (select from information_schema.columns where "
                                     "table_name = 'notes' and column_name = 'written_by') then alter table notes "
                                     "rename column written_by to author; end if; end $$; update alembic_version "
                                     "set version_num = '0002' where version_num = '0003'"},
    "flaky-endpoint": {"transform": {f"{APP}/app.py": _next_version},
                       "message": "Release the next patch version (nothing else changes)"},
    "slow-path": {"transform": {f"{APP}/app.py": _slow_notes},
                  "message": "Audit every notes listing"},
    "worker-crash": {"transform": {f"{APP}/worker.py": _crashing_worker},
                     "message": "Phase 4: the worker sends note digests"},
    "failed-migration-state": {"files": {f"{APP}/prisma/migrations/{PRISMA_MIGRATION}/migration.sql": PRISMA_INIT_SQL},
                               "message": "Add the Prisma schema of the API service",
                               "production_sql": PRISMA_INIT_SQL + """
CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
    "id" VARCHAR(36) PRIMARY KEY, "checksum" VARCHAR(64) NOT NULL, "finished_at" TIMESTAMPTZ,
    "migration_name" VARCHAR(255) NOT NULL, "logs" TEXT, "rolled_back_at" TIMESTAMPTZ,
    "started_at" TIMESTAMPTZ NOT NULL DEFAULT now(), "applied_steps_count" INTEGER NOT NULL DEFAULT 0);
INSERT INTO "_prisma_migrations" (id, checksum, migration_name, logs, started_at)
VALUES ('6a1f0b5e-replay', 'x', '""" + PRISMA_MIGRATION + """',
        'Database error code: 42P07. ERROR: relation "users" already exists', now() - interval '1 day');
""",
                               "cleanup_sql": 'drop table if exists "users"; '
                                              'drop table if exists "_prisma_migrations";'},
}
