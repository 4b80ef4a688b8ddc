"""A backup that fails its verification blocks the release with exit 1, and production is untouched: no later stage
runs, the database and the Render service are as they were."""

from __future__ import annotations

import itertools

import psycopg
import pytest
from harness import GOOD, deploy_pipeline, events_of, named, run_in_process, write_pipeline

import deploypipe.db.backup as backup_module
import deploypipe.stages.db as db_stages
from deploypipe.core.embedded_pg import pg_bin

_scratch_names = itertools.count()


class _Scratch:
    """Scratch databases on the session's embedded server (instead of a second server per project)."""

    def __init__(self, pg):
        self.pg = pg

    def create(self, name: str) -> str:
        name = f"{name}_{next(_scratch_names)}"
        self.pg.drop_database(name)
        return self.pg.create_database(name)

    def drop(self, name: str) -> None:
        return None


def _flip_bytes(backup) -> None:
    """Damage the dump after it was written (its recorded sha256 no longer matches)."""
    with open(backup.path, "r+b") as handle:
        size = handle.seek(0, 2)
        handle.seek(size // 2)
        chunk = handle.read(64)
        handle.seek(size // 2)
        handle.write(bytes(b ^ 0xFF for b in chunk))


def _truncate_and_rehash(backup) -> None:
    """A dump cut short whose recorded sha256 was taken after the damage: only a restore can tell."""
    with open(backup.path, "r+b") as handle:
        handle.truncate(handle.seek(0, 2) // 2)
    backup.sha256 = backup_module.file_sha256(backup.path)
    backup.save()


@pytest.mark.e2e
@pytest.mark.parametrize("damage", [_flip_bytes, _truncate_and_rehash], ids=["corrupted", "truncated"])
def test_a_backup_that_fails_verification_blocks_with_exit_1_and_production_is_untouched(
        tmp_path, render, clock, new_db, pg, monkeypatch, damage):
    url = new_db("backupprod")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("create table notes (id serial primary key, body text)")
        conn.execute("insert into notes (body) select 'note ' || g from generate_series(1, 500) g")
    real_create = backup_module.create_backup

    def create_then_damage(*args, **kwargs):
        backup = real_create(*args, **kwargs)
        damage(backup)
        return backup

    monkeypatch.setattr(backup_module, "create_backup", create_then_damage)
    monkeypatch.setattr(db_stages, "_scratch", lambda ctx: _Scratch(pg))
    migrate = f"{pg_bin('psql')} '{url}' -c 'alter table notes add column touched int'"
    pipeline = deploy_pipeline(database=True).replace("stages:\n", (
        "stages:\n  - id: backup\n    type: db.backup\n    with: {database: main}\n"
        f"  - id: migrate\n    type: shell.run\n    with: {{command: \"{migrate}\", changes_production: true}}\n"), 1)
    write_pipeline(tmp_path, pipeline)
    report, _ = run_in_process(tmp_path, render, clock, env={"DATABASE_URL": url})
    assert report.exit_code == 1 and report.outcome == "blocked", report.message
    assert report.stage("backup").status == "failed" and "failed verification" in report.message
    assert [report.stage(s).status for s in ("migrate", "deploy", "verify")] == ["not_run"] * 3
    assert not named(events_of(report.run_dir), "backup_verified")
    with psycopg.connect(url) as conn:
        columns = [r[0] for r in conn.execute("select column_name from information_schema.columns "
                                              "where table_name = 'notes' order by ordinal_position")]
        assert columns == ["id", "body"] and conn.execute("select count(*) from notes").fetchone()[0] == 500
    assert [d.trigger for d in render.deploys()] == ["manual"] and render.live_commit() == GOOD
