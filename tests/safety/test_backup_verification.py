"""A backup that fails its verification blocks the release with exit 1, and production is untouched: no later stage
runs, the database and the Render service are as they were."""

from __future__ import annotations

import functools
import time

import psycopg
import pytest
from harness import GOOD, deploy_pipeline, events_of, named, run_in_process, write_pipeline

import deploypipe.db.verified as verified
from deploypipe.core.embedded_pg import pg_bin
from deploypipe.testing import damaging


@pytest.mark.e2e
@pytest.mark.parametrize("damage", ["corrupt", "truncated"])
def test_a_dump_damaged_on_its_way_to_disk_blocks_the_combined_path_with_exit_1_and_production_is_untouched(
        tmp_path, render, clock, new_db, monkeypatch, damage):
    url = new_db("backupprod")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("create table notes (id serial primary key, body text)")
        conn.execute("insert into notes (body) select 'note ' || g || repeat(md5(g::text), 4) "
                     "from generate_series(1, 4000) g")
    monkeypatch.setattr(verified, "take_verified_backup", functools.partial(
        verified.take_verified_backup, dump_argv=damaging(damage)))
    alter = "-c 'alter table notes add column touched int'"
    pipeline = deploy_pipeline(database=True).replace("stages:\n", (
        "stages:\n  - id: backup\n    type: db.backup\n    with: {database: main}\n"
        f"  - id: dry\n    type: db.dry_run\n    with: {{database: main, command: \"{pg_bin('psql')} "
        f"\\\"$DATABASE_URL\\\" {alter}\"}}\n"
        f"  - id: migrate\n    type: shell.run\n    with: {{command: \"{pg_bin('psql')} '{url}' {alter}\", "
        "changes_production: true}\n"), 1)
    write_pipeline(tmp_path, pipeline)
    report, _ = run_in_process(tmp_path, render, clock, env={"DATABASE_URL": url})
    assert report.exit_code == 1 and report.outcome == "blocked", report.message
    assert report.stage("backup").status == "failed" and "failed verification" in report.message
    assert "its restore into staging failed" in report.message
    assert [report.stage(s).status for s in ("dry", "migrate", "deploy", "verify")] == ["not_run"] * 4
    assert not named(events_of(report.run_dir), "backup_verified")
    with psycopg.connect(url) as conn:
        columns = [r[0] for r in conn.execute("select column_name from information_schema.columns "
                                              "where table_name = 'notes' order by ordinal_position")]
        assert columns == ["id", "body"] and conn.execute("select count(*) from notes").fetchone()[0] == 4000
    assert [d.trigger for d in render.deploys()] == ["manual"] and render.live_commit() == GOOD


@pytest.mark.e2e
def test_a_render_export_is_requested_before_the_dump_and_awaited_after_it(tmp_path, render, clock, new_db):
    from deploypipe.emulator.records import PostgresRec

    url = new_db("exported")
    render.emulator.add_postgres(PostgresRec(id="dpg-maindb", name="maindb", database="exported", user="u",
                                             password="p", url=url, version="16", created_at=time.time()))
    render.emulator.postgres["dpg-maindb"].exports.append({"id": "exp-older", "createdAt": "2026-11-01T00:00:00Z"})
    pipeline = deploy_pipeline(database=True).replace('main: {url: "${DATABASE_URL}"}',
                                                      'main: {url: "${DATABASE_URL}", render_postgres: maindb}')
    pipeline = pipeline.replace("stages:\n", "stages:\n  - id: backup\n    type: db.backup\n"
                                             "    with: {database: main, render_export: true}\n", 1)
    write_pipeline(tmp_path, pipeline)
    report, _ = run_in_process(tmp_path, render, clock, env={"DATABASE_URL": url})
    assert report.exit_code == 0, report.message
    outputs = report.stage("backup").outputs
    listed = [e["id"] for e in render.emulator.postgres["dpg-maindb"].exports if e["id"] != "exp-older"]
    assert outputs["render_export"] == "dpg-maindb" and [outputs["render_export_id"]] == listed
    events = [e["event"] for e in events_of(report.run_dir)]
    assert events.index("render_export_requested") < events.index("backup_verified") < \
        events.index("render_export_listed")
