"""The local Render's Postgres point-in-time recovery on embedded PostgreSQL: a NEW database with the data of the
restore time (not later writes), Render's limits as 400s with its error shape, DELETE, faults, the knobs."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import httpx
import psycopg
import pytest

from deploypipe.emulator import Emulator, build_emulator, in_process_client
from deploypipe.emulator.app import apply_fault
from deploypipe.emulator.ids import iso
from deploypipe.emulator.records import PostgresRec
from deploypipe.testing import FakeClock

KEY = "rnd_recovery_tests"
START = 1_767_225_600.0  # 2026-01-01T00:00:00Z
_names = itertools.count()


@dataclass
class World:
    """One local Render with a data dir (snapshots, clones) on a fake clock, and production databases beside it."""

    emulator: Emulator
    clock: FakeClock
    http: httpx.Client
    production: Any  # the embedded server playing production (attached databases, as in the local default)

    def source(self, rows: int = 3) -> tuple[str, str]:
        """A new attached database with ``rows`` notes; returns (postgres id, url)."""
        name = f"prod_{next(_names)}"
        url = self.production.create_database(name, owner="app", password="app-secret-pw")
        sql(url, "create table notes (id int primary key, body text)")
        sql(url, "insert into notes select i, 'note ' || i from generate_series(1, %s) i", (rows,))
        rec = PostgresRec(id=f"dpg-{name.replace('_', '')}", name=name, database=name, user="app",
                          password="app-secret-pw", url=url, version="16", created_at=self.clock.now)
        self.emulator.add_postgres(rec)
        return rec.id, url

    def recovery(self, pid: str) -> dict[str, Any]:
        answer = self.http.get(f"/postgres/{pid}/recovery")
        assert answer.status_code == 200, answer.text
        return answer.json()

    def recover(self, pid: str, restore_time: str, **body: Any) -> httpx.Response:
        return self.http.post(f"/postgres/{pid}/recovery", json={"restoreTime": restore_time, **body})

    def ready(self, clone_id: str) -> dict[str, Any]:
        self.clock.sleep(self.emulator.recovery.creating_s)
        return self.http.get(f"/postgres/{clone_id}").json()

    def url(self, pid: str) -> str:
        return self.http.get(f"/postgres/{pid}/connection-info").json()["externalConnectionString"]


def sql(url: str, statement: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(statement, params or None)
        return cursor.fetchall() if cursor.description else []


def count(url: str) -> int:
    return sql(url, "select count(*) from notes")[0][0]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    from deploypipe.core.embedded_pg import start_embedded

    root = tmp_path_factory.mktemp("recovery")
    production = start_embedded(root / "production-pg")
    clock = FakeClock(now=START)
    emulator = build_emulator(data_dir=root / "render", clock=clock.time, api_keys=(KEY,), recovery_min_age_s=0)
    http = in_process_client(emulator, KEY)
    yield World(emulator, clock, http, production)
    http.close()
    emulator.close()
    production.stop()


@pytest.fixture(autouse=True)
def knobs(world: World) -> Iterator[None]:
    """Each test starts with min_age 0, a 7-day window, a 2-second creating period and no faults."""
    yield
    state = world.emulator.recovery
    state.min_age_s, state.window_days, state.creating_s = 0.0, 7.0, 2.0
    world.emulator.faults.clear()


def test_a_clone_is_a_new_database_with_the_data_of_the_restore_time_not_later_writes(world):
    pid, url = world.source(rows=3)
    world.clock.sleep(60)
    info = world.recovery(pid)
    assert info == {"recoveryStatus": "AVAILABLE", "startsAt": iso(world.clock.now)}
    restore_time = iso(world.clock.now)
    world.clock.sleep(30)
    sql(url, "insert into notes values (4, 'written after the restore point'), (5, 'and another')")
    world.clock.sleep(30)
    answer = world.recover(pid, restore_time, restoreName="before-the-migration")
    assert answer.status_code == 200, answer.text
    clone = answer.json()
    assert clone["id"] != pid and clone["name"] == "before-the-migration" and clone["status"] == "creating"
    listed = {row["postgres"]["id"]: row["postgres"]["status"] for row in world.http.get("/postgres").json()}
    assert listed[clone["id"]] == "creating" and listed[pid] == "available"
    assert world.ready(clone["id"])["status"] == "available"
    clone_url = world.url(clone["id"])
    assert clone_url != url and count(clone_url) == 3 and count(url) == 5
    sql(clone_url, "alter table notes add column migrated int")  # the clone's role owns what it restored


def test_a_restore_time_between_snapshots_gets_the_newest_snapshot_taken_at_or_before_it(world):
    pid, url = world.source(rows=1)
    world.recovery(pid)
    first = world.clock.now
    world.clock.sleep(100)
    sql(url, "insert into notes values (2, 'b')")
    world.recovery(pid)
    second = world.clock.now
    world.clock.sleep(100)
    between = world.recover(pid, iso(first + 50)).json()
    exactly = world.recover(pid, iso(second)).json()
    assert world.ready(between["id"])["status"] == world.ready(exactly["id"])["status"] == "available"
    assert (count(world.url(between["id"])), count(world.url(exactly["id"]))) == (1, 2)


@pytest.mark.parametrize("body, message", [
    ({}, "restoreTime is required"),
    ({"restoreTime": "yesterday"}, "restoreTime must be an ISO 8601 date-time"),
    ({"restoreTime": "2025-12-01T00:00:00Z"}, "is before the recovery window, which starts at"),
    ({"restoreTime": "2030-01-01T00:00:00Z"}, "is in the future"),
    ({"restoreTime": "NOW", "plan": "gigantic"}, "plan 'gigantic' is not a Postgres plan"),
    ({"restoreTime": "NOW", "restoreName": 7}, "restoreName must be a string"),
])
def test_a_recovery_render_would_refuse_is_a_400_with_renders_error_shape_and_creates_nothing(world, body, message):
    pid, _ = world.source()
    world.recovery(pid)
    before = set(world.emulator.postgres)
    if body.get("restoreTime") == "NOW":
        body = {**body, "restoreTime": iso(world.clock.now)}
    answer = world.http.post(f"/postgres/{pid}/recovery", json=body)
    assert answer.status_code == 400 and set(answer.json()) == {"id", "message"}, answer.text
    assert message in answer.json()["message"] and answer.json()["id"] == "bad_request"
    assert set(world.emulator.postgres) == before


def test_renders_ten_minutes_are_a_knob_a_restore_time_is_refused_until_it_is_that_old(world):
    world.emulator.recovery.min_age_s = 600
    pid, _ = world.source()
    world.recovery(pid)
    restore_time = iso(world.clock.now)
    world.clock.sleep(599)
    answer = world.recover(pid, restore_time)
    assert answer.status_code == 400
    assert answer.json()["message"] == (f"restoreTime {restore_time} is within the last 600 s: cannot restore to "
                                        f"within the last 10 minutes; the newest restorable time is "
                                        f"{iso(world.clock.now - 600)}")
    world.clock.sleep(1)
    assert world.recover(pid, restore_time).status_code == 200


def test_the_window_is_a_knob_snapshots_it_no_longer_needs_are_pruned_and_starts_at_moves(world):
    world.emulator.recovery.window_days = 1
    pid, _ = world.source()
    first = world.clock.now
    for _ in range(3):  # snapshots at 0 h, 10 h, 20 h
        world.recovery(pid)
        world.clock.sleep(10 * 3600)
    snapshots = world.emulator.data_dir / "recovery" / pid
    assert len(list(snapshots.glob("*.dump"))) == 3
    world.clock.sleep(10 * 3600)
    info = world.recovery(pid)  # at 40 h the window starts at 16 h: the 10 h snapshot covers it, the 0 h one goes
    assert info["startsAt"] == iso(world.clock.now - 86400)
    kept = sorted(int(p.stem) for p in snapshots.glob("*.dump"))
    assert len(kept) == 3 and kept[0] == int((first + 10 * 3600) * 1_000_000)
    assert world.recover(pid, iso(world.clock.now - 86401)).status_code == 400
    assert world.recover(pid, iso(world.clock.now - 86400)).status_code == 200


def test_delete_answers_204_and_drops_the_clone_and_its_role(world):
    pid, _ = world.source()
    world.recovery(pid)
    clone = world.recover(pid, iso(world.clock.now)).json()
    world.ready(clone["id"])
    database, user = clone["databaseName"], clone["databaseUser"]
    answer = world.http.delete(f"/postgres/{clone['id']}")
    assert (answer.status_code, answer.content) == (204, b"")
    assert world.http.get(f"/postgres/{clone['id']}").status_code == 404
    assert clone["id"] not in [row["postgres"]["id"] for row in world.http.get("/postgres").json()]
    server = world.emulator.recovery.server
    assert sql(server.url(), "select count(*) from pg_database where datname = %s", (database,)) == [(0,)]
    assert sql(server.url(), "select count(*) from pg_roles where rolname = %s", (user,)) == [(0,)]
    again = world.http.delete(f"/postgres/{clone['id']}")
    assert again.status_code == 404 and set(again.json()) == {"id", "message"}


def test_delete_of_an_attached_database_forgets_it_and_leaves_its_data_alone(world):
    pid, url = world.source(rows=2)
    assert world.http.delete(f"/postgres/{pid}").status_code == 204
    assert world.http.get(f"/postgres/{pid}").status_code == 404 and count(url) == 2


def test_recovery_is_not_available_without_a_data_dir_and_not_ready_while_a_clone_is_created(world):
    bare = build_emulator(api_keys=(KEY,))
    bare.add_postgres(PostgresRec(id="dpg-bare", name="bare", database="b", user="b", password="p",
                                  url="postgresql://b:p@127.0.0.1:1/b", version="16", created_at=0.0))
    with in_process_client(bare, KEY) as http:
        assert http.get("/postgres/dpg-bare/recovery").json() == {"recoveryStatus": "NOT_AVAILABLE"}
        refused = http.post("/postgres/dpg-bare/recovery", json={"restoreTime": "2026-01-01T00:00:00Z"})
        assert refused.status_code == 400 and "not available" in refused.json()["message"]
    pid, _ = world.source()
    world.recovery(pid)
    clone = world.recover(pid, iso(world.clock.now)).json()
    assert world.recovery(clone["id"]) == {"recoveryStatus": "BACKUP_NOT_READY"}
    world.ready(clone["id"])
    assert world.recovery(clone["id"])["recoveryStatus"] == "AVAILABLE"  # a clone can be recovered in turn


def test_an_unreachable_database_has_no_backup_ready(world):
    world.emulator.add_postgres(PostgresRec(id="dpg-gone", name="gone", database="g", user="g", password="pw",
                                            url="postgresql://g:pw@127.0.0.1:1/g", version="16", created_at=0.0))
    assert world.recovery("dpg-gone") == {"recoveryStatus": "BACKUP_NOT_READY"}


def test_a_fail_recovery_fault_ends_the_next_clone_recovery_failed_and_only_that_one(world):
    pid, _ = world.source()
    world.recovery(pid)
    apply_fault(world.emulator, {"action": "fail_recovery", "postgres": world.emulator.postgres[pid].name})
    failed = world.recover(pid, iso(world.clock.now))
    assert failed.status_code == 200 and failed.json()["status"] == "creating"
    assert world.ready(failed.json()["id"])["status"] == "recovery_failed"
    assert world.ready(world.recover(pid, iso(world.clock.now)).json()["id"])["status"] == "available"
    with pytest.raises(ValueError, match="fail_recovery: no postgres 'nope'"):
        apply_fault(world.emulator, {"action": "fail_recovery", "postgres": "nope"})


def test_a_recovery_answered_500_after_the_work_has_still_created_its_database(world):
    pid, _ = world.source()
    world.recovery(pid)
    world.emulator.faults.add(action="accept_then_status", match="POST /postgres/*/recovery", status=500)
    answer = world.recover(pid, iso(world.clock.now), restoreName="lost-answer")
    assert answer.status_code == 500
    names = [row["postgres"]["name"] for row in world.http.get("/postgres", params={"name": "lost-answer"}).json()]
    assert names == ["lost-answer"]


def test_the_recovery_knobs_are_build_emulator_options_and_command_line_flags(tmp_path, capsys):
    from deploypipe.cli.entry import run

    emulator = build_emulator(recovery_min_age_s=0, recovery_window_days=3, recovery_creating_s=0.5)
    state = emulator.recovery
    assert (state.min_age_s, state.window_days, state.creating_s) == (0, 3, 0.5)
    assert (build_emulator().recovery.min_age_s, build_emulator().recovery.window_days) == (600, 7)
    with pytest.raises(SystemExit) as done:
        run(["emulator", "--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for flag in ("--recovery-min-age-s", "--recovery-window-days", "--recovery-creating-s"):
        assert flag in text
    assert "refuses restore times newer than this; 0 allows any (default: 600.0)" in text


def test_clones_are_dropped_when_the_local_render_stops(tmp_path):
    from deploypipe.core.embedded_pg import start_embedded

    clock = FakeClock(now=START)
    blueprint = tmp_path / "render.yaml"
    blueprint.write_text("databases:\n  - name: main-db\n    databaseName: app\n    user: app\n")
    emulator = build_emulator(blueprint=blueprint, data_dir=tmp_path / "render", clock=clock.time, api_keys=(KEY,),
                              recovery_min_age_s=0)
    with in_process_client(emulator, KEY) as http:
        pid = http.get("/postgres").json()[0]["postgres"]["id"]
        assert emulator.postgres[pid].owned  # provisioned by the local Render: DELETE would drop it
        http.get(f"/postgres/{pid}/recovery")
        clone = http.post(f"/postgres/{pid}/recovery", json={"restoreTime": iso(clock.now)}).json()
    emulator.close()
    server = start_embedded(Path(tmp_path / "render" / "pg"))
    try:
        names = [row[0] for row in sql(server.url(), "select datname from pg_database")]
        assert "app" in names and clone["databaseName"] not in names
    finally:
        server.stop()
