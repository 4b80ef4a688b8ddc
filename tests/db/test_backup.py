"""Backups against a real PostgreSQL: round trip, private files, checksums, retention (verification: test_verified)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import psycopg
import pytest
from dbfixtures import sql

from deploypipe.db.backup import (
    create_backup,
    file_sha256,
    find_backup,
    list_backups,
    load_backup,
    restore_backup,
    retain,
)
from deploypipe.db.pg import row_counts, schema_snapshot
from deploypipe.errors import StageFailed


def _populate(url: str) -> None:
    sql(url, """
        create type mood as enum ('ok', 'sad');
        create table users (id bigserial primary key, email text not null, mood mood default 'ok');
        create unique index users_email on users (email);
        create table orders (id bigserial primary key, user_id bigint references users(id), total numeric(10, 2));
        insert into users (email) select 'u' || g || '@x.test' from generate_series(1, 500) g;
        insert into orders (user_id, total) select 1 + g % 500, g * 1.5 from generate_series(1, 2000) g;
        create extension if not exists vector;
        create table items (id int primary key, embedding vector(3));
        insert into items values (1, '[1,2,3]');
    """)


def _indexes(url: str) -> list[tuple]:
    return sql(url, "select tablename, indexname, indexdef from pg_indexes where schemaname = 'public' order by 2")


def test_a_backup_restores_with_identical_rows_schema_and_indexes(new_db, tmp_path):
    source = new_db("src")
    _populate(source)
    backup = create_backup(source, tmp_path / "backups", run_id="run-1234abcd", label="test")
    assert backup.row_counts == {"public.items": 1, "public.orders": 2000, "public.users": 500}
    assert backup.compression == 1

    target = new_db("copy")
    result = restore_backup(backup, target)
    assert result["mismatched"] == {}
    with psycopg.connect(source) as a, psycopg.connect(target) as b:
        assert row_counts(a) == row_counts(b)
        assert schema_snapshot(a) == schema_snapshot(b)
    assert _indexes(source) == _indexes(target)


def test_backup_files_are_private_from_creation_and_metadata_describes_them(new_db, tmp_path):
    source = new_db("priv")
    _populate(source)
    backup = create_backup(source, tmp_path / "backups", run_id="run-5678", label="t")
    assert stat.S_IMODE(os.stat(tmp_path / "backups").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(backup.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(backup.meta_path).st_mode) == 0o600
    meta = json.loads(backup.meta_path.read_text())
    assert meta["sha256"] == file_sha256(backup.path)
    assert meta["format"] == "custom" and meta["run_id"] == "run-5678" and meta["server_version"] >= 160000
    assert meta["database_size"] > 0 and meta["duration_s"] >= 0
    assert meta["row_counts"]["public.users"] == 500
    assert backup.id.endswith("-run5678") and load_backup(backup.meta_path) == backup


def test_backup_metadata_never_contains_the_database_password(pg_server, tmp_path):
    url = pg_server.create_database("secretive", owner="secretive_owner", password="s3cr3t-pass-word")
    assert "s3cr3t-pass-word" in url
    backup = create_backup(url, tmp_path / "b", run_id="r1")
    text = backup.meta_path.read_text()
    assert "s3cr3t-pass-word" not in text and "***" in json.loads(text)["database"]


def test_directory_format_with_parallel_jobs_round_trips(new_db, pg_server, tmp_path):
    source = new_db("dirfmt")
    _populate(source)
    backup = create_backup(source, tmp_path / "backups", fmt="directory", jobs=2, run_id="r-dir")
    assert Path(backup.path).is_dir() and stat.S_IMODE(os.stat(backup.path).st_mode) == 0o700
    assert all(stat.S_IMODE(os.stat(p).st_mode) == 0o600 for p in Path(backup.path).iterdir())
    assert restore_backup(backup, new_db("dircopy"), jobs=2)["mismatched"] == {}


def test_a_backup_with_flipped_bytes_is_refused_by_its_checksum(new_db, tmp_path):
    source = new_db("flip")
    _populate(source)
    backup = create_backup(source, tmp_path / "backups", run_id="r-flip")
    with open(backup.path, "r+b") as handle:
        handle.seek(os.path.getsize(backup.path) // 2)
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(StageFailed, match="does not match its recorded sha256"):
        restore_backup(backup, new_db("never"))


def test_retain_keeps_the_newest_backups_and_list_is_oldest_first(new_db, tmp_path):
    source = new_db("keep")
    sql(source, "create table t (id int)")
    ids = [create_backup(source, tmp_path / "b", run_id=f"run{i}").id for i in range(3)]
    assert [b.id for b in list_backups(tmp_path / "b")] == ids
    assert retain(tmp_path / "b", keep=2) == ids[:1]
    assert [b.id for b in list_backups(tmp_path / "b")] == ids[1:]
    assert not any(p.name.startswith(ids[0]) for p in (tmp_path / "b").iterdir())
    assert find_backup(tmp_path / "b", ids[2]).id == ids[2]
    with pytest.raises(StageFailed, match="no backup 'nope'"):
        find_backup(tmp_path / "b", "nope")


def test_pg_tools_get_the_password_through_the_environment_never_the_command_line():
    from deploypipe.db.pg import tool_target

    url, env = tool_target("postgresql://app:s3cret%2F1@db.example:5432/app?sslmode=require")
    assert url == "postgresql://app@db.example:5432/app?sslmode=require" and env == {"PGPASSWORD": "s3cret/1"}
    assert tool_target("postgresql://app@/app?host=/tmp/sock") == ("postgresql://app@/app?host=/tmp/sock", {})
