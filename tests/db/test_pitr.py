"""deploypipe.db.pitr end to end on the local Render (in-process) with embedded PostgreSQL: a restore point, then
writes, then a clone holds the restore point's data; the clone is gone after success, an exception, KeyboardInterrupt
and SIGTERM; the restore compensation brings production back to the restore point, only when confirmed."""

from __future__ import annotations

import itertools
import os
import signal
from dataclasses import dataclass
from typing import Any, Iterator

import psycopg
import pytest
from structlog.testing import capture_logs

from deploypipe.db.pitr import (
    BILLING_NOTE,
    ModeChoice,
    PitrClone,
    RestorePoint,
    choose_mode,
    database_size_bytes,
    record_restore_point,
    recovery_clone,
    restore_production_from,
)
from deploypipe.emulator import Emulator, build_emulator, in_process_client
from deploypipe.emulator.records import PostgresRec
from deploypipe.errors import SpecError, StageFailed
from deploypipe.render import RenderClient
from deploypipe.testing import FakeClock

KEY = "rnd_pitr_library_tests"
PASSWORD = "prod-secret-pw-123"
_names = itertools.count()


@dataclass
class Local:
    """The local Render (snapshots and clones in its data dir) and its client on one fake clock."""

    emulator: Emulator
    client: RenderClient
    clock: FakeClock

    def names(self) -> list[str]:
        return sorted(p.name for p in self.client.list_postgres())

    def clones(self) -> list[str]:
        return [p.id for p in self.emulator.postgres.values() if p.recovered_from]


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Local]:
    clock = FakeClock(now=1_767_225_600.0)
    emulator = build_emulator(data_dir=tmp_path_factory.mktemp("pitr") / "render", clock=clock.time,
                              api_keys=(KEY,), recovery_min_age_s=0)
    client = RenderClient(in_process_client(emulator, KEY), sleep=clock.sleep, clock=clock.time,
                          wall_clock=clock.time)
    yield Local(emulator, client, clock)
    client.close()
    emulator.close()


@pytest.fixture(autouse=True)
def render_like(local: Local) -> Iterator[None]:
    yield
    local.emulator.recovery.min_age_s = 0.0
    local.emulator.faults.clear()


@pytest.fixture
def production(local: Local, pg_server: Any) -> tuple[str, str]:
    """A production database (role app, not a superuser) attached to the local Render: (postgres id, url)."""
    name = f"production_{next(_names)}"
    url = pg_server.create_database(name, owner="app", password=PASSWORD)
    with psycopg.connect(pg_server.url(name), autocommit=True) as conn:
        conn.execute("create extension if not exists vector")  # owned by the superuser, as on many servers
    sql(url, "create table notes (id int primary key, body text, embedding vector(2))")
    sql(url, "insert into notes select i, 'note ' || i, '[1,2]' from generate_series(1, 3) i")
    sql(url, "create table alembic_version (version_num varchar(32) primary key)")
    sql(url, "insert into alembic_version values ('a1')")
    rec = PostgresRec(id=f"dpg-{name.replace('_', '')}", name=name, database=name, user="app", password=PASSWORD,
                      url=url, version="16", created_at=local.clock.now)
    local.emulator.add_postgres(rec)
    return rec.id, url


def sql(url: str, statement: str) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(statement)
        return cursor.fetchall() if cursor.description else []


def count(url: str) -> int:
    return sql(url, "select count(*) from notes")[0][0]


def clone(local: Local, pid: str, point: RestorePoint | float, **kwargs: Any) -> Any:
    return recovery_clone(local.client, pid, point, "dry-run", **{"min_age_s": 0, "sleep": local.clock.sleep,
                                                                   "clock": local.clock.time, **kwargs})


def test_a_clone_made_after_later_writes_holds_the_data_of_the_restore_point(local, production):
    pid, url = production
    point = record_restore_point(local.client, pid, now=local.clock.time)
    assert point.at.timestamp() == local.clock.now and point.window_starts_at is not None
    local.clock.sleep(45)
    sql(url, "insert into notes values (4, 'after the restore point', '[0,0]')")
    with capture_logs() as logs, clone(local, pid, point) as made:
        assert isinstance(made, PitrClone) and made.restore_time == point.at
        assert made.note == f"the restore point {point.iso}" and made.name.startswith("dry-run-")
        assert count(made.url) == 3 and count(url) == 4
        sql(made.url, "alter table notes add column migrated_on_the_clone int")  # the dry run migrates it
        assert PASSWORD not in repr(made) and made.url not in str(made)
    assert not [name for name in local.names() if name.startswith("dry-run")] and local.clones() == []
    assert [e["event"] for e in logs if e["event"].startswith("pitr_")] == [
        "pitr_clone_time_chosen", "pitr_clone_created", "pitr_clone_deleted"]
    assert not any(made.url in str(e) or "secret" in str(e) for e in logs)  # the URL (its password) is never logged


def test_with_renders_ten_minutes_the_clone_takes_the_newest_allowed_time_and_says_so(local, production):
    local.emulator.recovery.min_age_s = 600
    pid, url = production
    local.client.postgres_recovery_info(pid)  # the local Render snapshots the 3 rows now
    local.clock.sleep(3600)
    sql(url, "insert into notes values (4, 'd', '[0,0]')")
    point = record_restore_point(local.client, pid, now=local.clock.time)
    with clone(local, pid, point, min_age_s=600, clock_skew_s=30) as made:
        assert made.restore_time.timestamp() == pytest.approx(local.clock.now - 630)
        assert made.note.startswith(f"the restore point {point.iso} is within the last 600 s, which Render cannot "
                                    "restore to: cloned the newest allowed time")
        assert count(made.url) == 3  # the newest snapshot at or before that time: the restore point's write is missing
    assert local.clones() == []


def test_the_clone_is_deleted_after_an_exception_in_the_block(local, production):
    pid, _ = production
    point = record_restore_point(local.client, pid, now=local.clock.time)
    with pytest.raises(RuntimeError, match="the dry run failed"):
        with clone(local, pid, point):
            assert len(local.clones()) == 1
            raise RuntimeError("the dry run failed")
    assert local.clones() == []


def test_the_clone_is_deleted_after_keyboard_interrupt(local, production):
    pid, _ = production
    point = record_restore_point(local.client, pid, now=local.clock.time)
    with pytest.raises(KeyboardInterrupt):
        with clone(local, pid, point):
            raise KeyboardInterrupt
    assert local.clones() == []


def test_the_clone_is_deleted_after_sigterm_turned_into_keyboard_interrupt(local, production):
    pid, _ = production
    point = record_restore_point(local.client, pid, now=local.clock.time)

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")  # what the deploypipe command does with SIGTERM

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        with pytest.raises(KeyboardInterrupt, match=f"signal {signal.SIGTERM}"):
            with clone(local, pid, point):
                os.kill(os.getpid(), signal.SIGTERM)
                pytest.fail("SIGTERM did not interrupt the block")
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert local.clones() == []


class _SignalDuringDelete:
    """The client, except that a SIGTERM arrives just as the clone is being deleted."""

    def __init__(self, client: RenderClient):
        self.client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def delete_postgres(self, postgres_id: str, *, missing_ok: bool = False) -> bool:
        os.kill(os.getpid(), signal.SIGTERM)
        return self.client.delete_postgres(postgres_id, missing_ok=missing_ok)


def test_a_signal_during_the_deletion_waits_until_the_clone_is_gone(local, production):
    pid, _ = production
    point = record_restore_point(local.client, pid, now=local.clock.time)
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: (_ for _ in ()).throw(KeyboardInterrupt("term")))
    try:
        with pytest.raises(KeyboardInterrupt, match="term"):
            with recovery_clone(_SignalDuringDelete(local.client), pid, point, "dry-run", min_age_s=0,
                                sleep=local.clock.sleep, clock=local.clock.time):
                pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert local.clones() == []


class _LostAnswer:
    """The client, except that the recovery's answer never arrives (the process is interrupted meanwhile)."""

    def __init__(self, client: RenderClient):
        self.client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def recover_postgres(self, postgres_id: str, **kwargs: Any) -> Any:
        self.client.recover_postgres(postgres_id, **kwargs)
        raise KeyboardInterrupt


def test_a_clone_whose_answer_was_lost_is_found_by_its_name_and_deleted(local, production):
    pid, _ = production
    point = record_restore_point(local.client, pid, now=local.clock.time)
    with pytest.raises(KeyboardInterrupt):
        with recovery_clone(_LostAnswer(local.client), pid, point, "dry-run", min_age_s=0,
                            sleep=local.clock.sleep, clock=local.clock.time):
            pytest.fail("no clone to use")
    assert local.clones() == [] and pid in local.emulator.postgres


def test_a_recovery_that_fails_on_render_raises_and_leaves_no_clone(local, production):
    from deploypipe.emulator.app import apply_fault
    from deploypipe.render import PostgresNotReady

    pid, _ = production
    point = record_restore_point(local.client, pid, now=local.clock.time)
    apply_fault(local.emulator, {"action": "fail_recovery", "postgres": pid})
    with pytest.raises(PostgresNotReady, match="ended recovery_failed"):
        with clone(local, pid, point):
            pytest.fail("a failed recovery yields nothing")
    assert local.clones() == []


def test_no_restore_point_and_no_clone_when_render_cannot_recover_the_database(local):
    local.emulator.add_postgres(PostgresRec(id="dpg-unreachable", name="unreachable", database="u", user="u",
                                            password="pw", url="postgresql://u:pw@127.0.0.1:1/u", version="16",
                                            created_at=local.clock.now))
    with pytest.raises(StageFailed, match="point-in-time recovery of postgres dpg-unreachable is BACKUP_NOT_READY, "
                                          "not AVAILABLE; hint: Render has not finished the database's first backup"):
        record_restore_point(local.client, "dpg-unreachable", now=local.clock.time)
    with pytest.raises(StageFailed, match="BACKUP_NOT_READY"):
        with clone(local, "dpg-unreachable", local.clock.now):
            pytest.fail("no clone")
    assert local.clones() == []


def test_a_restore_time_before_the_window_is_refused_before_anything_is_created(local, production):
    pid, _ = production
    point = record_restore_point(local.client, pid, now=local.clock.time)
    with pytest.raises(StageFailed, match=f"is before postgres {pid}'s recovery window, which starts at {point.iso}"):
        with clone(local, pid, point.at.timestamp() - 3600):
            pytest.fail("no clone")
    with pytest.raises(StageFailed, match="the restore point .* is before"):
        record_restore_point(local.client, pid, now=lambda: local.clock.now - 3600)
    assert local.clones() == []


def test_restore_production_from_a_restore_point_only_when_confirmed(local, production):
    local.emulator.recovery.min_age_s = 600  # Render's 10 minutes: the restore waits for the restore point
    pid, url = production
    point = record_restore_point(local.client, pid, now=local.clock.time)
    local.clock.sleep(60)
    sql(url, "alter table notes add column priority int")  # the migration that then failed
    sql(url, "create table audit (id int)")
    sql(url, "update alembic_version set version_num = 'b2'")
    sql(url, "insert into notes values (4, 'written after the restore point', '[0,0]', 1)")
    questions: list[str] = []
    refused = restore_production_from(local.client, pid, point, url, confirm=lambda q: questions.append(q) or False,
                                      run_id="run-1", sleep=local.clock.sleep, clock=local.clock.time)
    assert (refused.action, refused.verified) == ("restore_refused", False) and "not confirmed" in refused.summary
    assert count(url) == 4 and sql(url, "select version_num from alembic_version") == [("b2",)]
    assert PASSWORD not in questions[0] and "Writes made since then are LOST" in questions[0]
    assert BILLING_NOTE in questions[0] and local.clones() == []
    started = local.clock.now
    undo = restore_production_from(local.client, pid, point, url, confirm=lambda q: True, run_id="run-1",
                                   sleep=local.clock.sleep, clock=local.clock.time, clock_skew_s=30)
    assert local.clock.now - started >= 600 - 60 + 30  # waited until Render allows the exact restore point
    assert (undo.action, undo.verified) == ("restored", True), undo.summary
    assert count(url) == 3 and sql(url, "select version_num from alembic_version") == [("a1",)]
    columns = sql(url, "select column_name from information_schema.columns where table_name = 'notes' order by 1")
    assert columns == [("body",), ("embedding",), ("id",)]
    assert undo.details["tables_not_at_restore_point"] == ["public.audit"] and undo.details["revision_now"] == "a1"
    assert "tables created since then were left in place: public.audit" in undo.summary
    assert undo.details["restore_time"] == point.iso and local.clones() == []


def test_restore_point_round_trips_through_the_journal_as_json():
    import json
    from datetime import UTC, datetime

    point = RestorePoint(postgres_id="dpg-x", at=datetime.fromtimestamp(1767225600.123456, UTC))
    again = RestorePoint.from_dict(json.loads(json.dumps(point.to_dict())))
    assert again == point and point.iso == "2026-01-01T00:00:00.123456Z"


@pytest.mark.parametrize("mode, render_postgres, size_gb, threshold, path, line", [
    ("dump", "main-db", None, None, "dump", "dump: mode: dump (pg_dump, verified on the staging copy it is restored "
                                            "into as it is written; the dry run migrates that copy)"),
    ("pitr", "main-db", None, None, "pitr", f"pitr: mode: pitr (Render point-in-time recovery of main-db); "
                                            f"{BILLING_NOTE}"),
    ("auto", "main-db", 250.0, 100.0, "pitr", f"pitr: mode: auto: 250.0 GB > 100 GB, Render point-in-time recovery "
                                              f"of main-db; {BILLING_NOTE}"),
    ("auto", "main-db", 3.5, 100.0, "dump", "dump: mode: auto: 3.5 GB <= 100 GB, pg_dump"),
    ("auto", None, 250.0, 100.0, "dump", "dump: mode: auto, and no render_postgres to recover on Render: pg_dump"),
    ("auto", "main-db", None, 100.0, None, "auto: mode: auto: Render point-in-time recovery of main-db if "
                                           "pg_database_size > 100 GB when the run starts, else pg_dump; with pitr, "
                                           f"{BILLING_NOTE}"),
])
def test_choose_mode_says_which_path_and_why_in_one_line(mode, render_postgres, size_gb, threshold, path, line):
    size = None if size_gb is None else int(size_gb * 1024 ** 3)
    choice = choose_mode(mode, render_postgres=render_postgres, size_bytes=size, threshold_gb=threshold)
    assert isinstance(choice, ModeChoice) and choice.path == path and choice.line() == line


def test_choose_mode_refuses_a_target_that_cannot_take_its_path():
    with pytest.raises(SpecError, match="mode: pitr needs targets.databases.<key>.render_postgres"):
        choose_mode("pitr", render_postgres=None)
    with pytest.raises(SpecError, match="mode: auto needs a size threshold in GB"):
        choose_mode("auto", render_postgres="main-db", size_bytes=1)


def test_database_size_is_pg_database_size(production, pg_server):
    _, url = production
    name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    expected = sql(pg_server.url(), f"select pg_database_size('{name}')")[0][0]
    assert database_size_bytes(url) == pytest.approx(expected, rel=0.05) and expected > 1_000_000
