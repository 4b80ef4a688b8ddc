"""One dump, one restore: the verified backup against a real PostgreSQL, damaged dumps included.

The damage goes in through ``dump_argv``, the seam that may rewrite pg_dump's command line
(``deploypipe.testing.damaging``: the real pg_dump, its output flipped or cut before it reaches the backup file).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import psycopg
import pytest
from dbfixtures import sql

from deploypipe.db.pg import row_counts, schema_snapshot
from deploypipe.db.progress import Progress
from deploypipe.db.staging import Staging
from deploypipe.db.verified import HASH_LIMIT_BYTES, take_verified_backup, take_verified_directory_backup
from deploypipe.errors import StageErrored, StageFailed
from deploypipe.testing import damaging


def _populate(url: str) -> None:
    sql(url, """
        create table users (id bigserial primary key, email text not null, note text);
        create unique index users_email on users (email);
        create table events (id bigserial primary key, user_id bigint references users(id), body text);
        create index events_user on events (user_id);
        insert into users (email, note) select 'u' || g || '@x.test', 'note ' || g from generate_series(1, 500) g;
        insert into events (user_id, body) select 1 + g % 500, md5(g::text) || repeat(md5((g * 7)::text), 8)
            from generate_series(1, 8000) g;
    """)


def _indexes(url: str) -> list[tuple]:
    return sql(url, "select tablename, indexname, indexdef from pg_indexes where schemaname = 'public' order by 2")


@pytest.fixture
def source(new_db):
    url = new_db("verified")
    _populate(url)
    return url


@pytest.fixture
def staging(source):
    with Staging.start(None, source) as throwaway:
        yield throwaway


def test_one_pass_leaves_a_verified_private_backup_and_a_staging_copy_equal_to_production(source, staging, tmp_path):
    reports: list[Progress] = []
    copy = take_verified_backup(source, tmp_path / "b", run_id="run-1", staging=staging, report=reports.append,
                                interval_s=0.01, dump_argv=lambda argv: ["bash", "-c", 'sleep 0.3; exec "$@"', "-",
                                                                         *argv])
    backup = copy.backup
    assert backup.verified and backup.compression == 1 and backup.row_counts == {"public.events": 8000,
                                                                                  "public.users": 500}
    assert [c["check"] for c in copy.checks] == ["restore", "sha256", "pg_restore_list", "post_data", "row_counts",
                                                 "table_hashes"]
    assert all(c["ok"] for c in copy.checks)
    assert stat.S_IMODE(os.stat(backup.path).st_mode) == 0o600
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == [f"{backup.id}.dump", f"{backup.id}.json"]
    with psycopg.connect(source) as a, psycopg.connect(copy.url) as b:
        assert row_counts(a) == row_counts(b) and schema_snapshot(a) == schema_snapshot(b)
    assert _indexes(source) == _indexes(copy.url)
    dump = [r for r in reports if r.phase == "dump"]
    assert dump and dump[0].unit == "bytes" and dump[0].total > 0
    directory = staging.directory
    copy.close()
    assert directory is not None and not directory.exists()


@pytest.mark.parametrize("kind", ["corrupt", "truncated"])
def test_a_damaged_dump_fails_verification_and_no_index_is_built_on_a_failed_load(source, staging, tmp_path, kind):
    with pytest.raises(StageFailed, match="failed verification: its restore into staging failed") as caught:
        take_verified_backup(source, tmp_path / "b", run_id="run-2", staging=staging, dump_argv=damaging(kind))
    assert "production is untouched" in (caught.value.hint or "")
    assert sql(staging.ready(), "select count(*) from pg_class where relkind in ('r', 'i') "
                                "and relnamespace = 'public'::regnamespace") == [(0,)]
    kept = [p for p in (tmp_path / "b").iterdir() if p.suffix == ".json"]
    assert len(kept) == 1 and '"verified": false' in kept[0].read_text()


def test_a_dump_missing_a_tables_rows_fails_on_the_counts(source, staging, tmp_path):
    def without_events(argv: list[str]) -> list[str]:
        return [*argv, "--exclude-table-data=public.events"]

    with pytest.raises(StageFailed, match=r"row counts differ from the snapshot's: public.events 8000 -> 0"):
        take_verified_backup(source, tmp_path / "b", run_id="run-3", staging=staging, dump_argv=without_events)


def test_a_dump_whose_rows_differ_with_equal_counts_fails_on_the_small_table_hashes(source, staging, tmp_path):
    def outside_the_snapshot(argv: list[str]) -> list[str]:
        sql(source, "update users set note = 'changed' where id = 7")  # committed after the counted snapshot
        return [a for a in argv if not a.startswith("--snapshot=")]

    with pytest.raises(StageFailed, match=r"restored rows differ from the snapshot's in public.users"):
        take_verified_backup(source, tmp_path / "b", run_id="run-4", staging=staging, dump_argv=outside_the_snapshot)


def test_a_failing_pg_dump_is_an_error_and_leaves_no_file(source, staging, tmp_path):
    with pytest.raises(StageErrored, match="pg_dump of .* exited 3"):
        take_verified_backup(source, tmp_path / "b", run_id="run-5", staging=staging,
                             dump_argv=lambda argv: ["bash", "-c", "echo 'pg_dump: error: boom' >&2; exit 3"])
    assert list((tmp_path / "b").iterdir()) == []


def test_an_uncompressed_dump_is_refused(source, staging, tmp_path):
    with pytest.raises(ValueError, match="compress must be 1-9"):
        take_verified_backup(source, tmp_path / "b", run_id="run-6", staging=staging, compress=0)


def test_a_given_staging_database_is_overwritten_and_production_refused(source, new_db, tmp_path):
    target = new_db("given_staging")
    sql(target, "create schema old; create table old.junk (x int); create table public.users (legacy int)")
    with Staging.start(target, source) as given:
        copy = take_verified_backup(source, tmp_path / "b", run_id="run-7", staging=given)
    assert copy.backup.verified and copy.url == target
    assert sql(target, "select count(*) from pg_namespace where nspname = 'old'") == [(0,)]
    assert sql(target, "select count(*) from users") == [(500,)]
    with pytest.raises(StageFailed, match="staging_url points at the production database"):
        Staging.start(source, source)


def test_the_directory_format_is_dumped_in_parallel_then_verified_on_staging(source, staging, tmp_path):
    copy = take_verified_directory_backup(source, tmp_path / "b", run_id="run-8", staging=staging, jobs=2)
    assert copy.backup.verified and Path(copy.backup.path).is_dir()
    assert sql(copy.url, "select count(*) from events") == [(8000,)]


def test_an_interrupted_backup_leaves_no_partial_dump_behind(source, staging, tmp_path):
    def interrupted(argv: list[str]) -> list[str]:
        raise KeyboardInterrupt  # as Ctrl-C or SIGTERM would, once the file exists and before pg_dump starts

    with pytest.raises(KeyboardInterrupt):
        take_verified_backup(source, tmp_path / "b", run_id="run-9", staging=staging, dump_argv=interrupted)
    assert list((tmp_path / "b").iterdir()) == []


def test_a_table_over_the_hash_limit_missing_from_the_copy_fails_on_its_count(source, staging, tmp_path):
    sql(source, "create table big (id bigserial primary key, body text); "
                "insert into big (body) select repeat(md5(g::text), 5) from generate_series(1, 90000) g")
    [[size]] = sql(source, "select pg_table_size('big')")
    assert size > HASH_LIMIT_BYTES  # counted, not hashed

    def without_big(argv: list[str]) -> list[str]:
        return [*argv, "--exclude-table=public.big"]

    with pytest.raises(StageFailed, match=r"row counts differ from the snapshot's: public.big 90000 -> missing; hint"):
        take_verified_backup(source, tmp_path / "b", run_id="run-10", staging=staging, dump_argv=without_big)
