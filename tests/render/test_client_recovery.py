"""Point-in-time recovery through the Render client on the local Render (embedded PostgreSQL, a fake clock): at most
one new database when Render performs the recovery and the answer fails, typed values, waits that never sleep."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Iterator

import httpx
import psycopg
import pytest
from render_fixtures import API_KEY, Counter, FakeClock, make_client
from structlog.testing import capture_logs

from deploypipe.emulator import Emulator, EmulatorServer, build_emulator, in_process_client
from deploypipe.emulator.app import apply_fault
from deploypipe.errors import NotFoundError, ProviderError
from deploypipe.render import Postgres, PostgresConnectionInfo, PostgresNotReady, RenderClient

FAULTS = [pytest.param({"action": "accept_then_status", "status": 500}, id="performed-then-500"),
          pytest.param({"action": "accept_then_status", "status": 503}, id="performed-then-503"),
          pytest.param({"action": "accept_then_drop"}, id="performed-then-dropped")]
_names = itertools.count()


@dataclass
class Local:
    emulator: Emulator
    clock: FakeClock
    server: EmulatorServer
    source: str  # the provisioned database's id, recoverable

    def clones(self, name: str) -> list[str]:
        return [p.id for p in self.emulator.postgres.values() if p.name == name]


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Local]:
    root = tmp_path_factory.mktemp("client-recovery")
    (root / "render.yaml").write_text("databases:\n  - name: main-db\n    databaseName: app\n    user: app\n")
    clock = FakeClock()
    emulator = build_emulator(blueprint=root / "render.yaml", data_dir=root / "render", clock=clock.time,
                              api_keys=(API_KEY,), recovery_min_age_s=0, recovery_creating_s=30)
    source = next(iter(emulator.postgres))
    with psycopg.connect(emulator.postgres[source].url, autocommit=True) as conn:
        conn.execute("create table notes (id int)")
        conn.execute("insert into notes values (1), (2)")
    with EmulatorServer(emulator) as server:  # stopping it closes the emulator and its embedded PostgreSQL
        yield Local(emulator, clock, server, source)


@pytest.fixture(autouse=True)
def clean(local: Local) -> Iterator[None]:
    yield
    local.emulator.faults.clear()
    local.emulator.recovery.min_age_s, local.emulator.recovery.creating_s = 0.0, 30.0


@pytest.fixture(params=["in-process", "loopback"])
def client(request, local: Local) -> Iterator[tuple[RenderClient, Counter]]:
    counter = Counter()
    if request.param == "in-process":
        http = in_process_client(local.emulator, API_KEY)
    else:
        http = httpx.Client(base_url=local.server.url, headers={"Authorization": f"Bearer {API_KEY}"},
                            timeout=httpx.Timeout(10.0))
    with make_client(http, local.clock, counter) as render:
        yield render, counter


def restore_point(local: Local, render: RenderClient) -> float:
    assert render.postgres_recovery_info(local.source).available  # the local Render snapshots here
    return local.clock.now


@pytest.mark.parametrize("fault", FAULTS)
def test_a_recovery_performed_then_failed_creates_exactly_one_database_and_is_not_sent_again(local, client, fault):
    render, counter = client
    at, name = restore_point(local, render), f"clone-{next(_names)}"
    local.emulator.faults.add(match="POST /postgres/*/recovery", **fault)
    with capture_logs() as logs:
        clone = render.recover_postgres(local.source, restore_time=at, restore_name=name)
    assert local.clones(name) == [clone.id] and clone.name == name and clone.id != local.source
    assert counter.count("POST") == 1  # looked up by its name, never sent again
    assert counter.sent[-1] == "GET /v1/postgres"
    events = [e["event"] for e in logs if e["event"].startswith("recovery_")]
    assert events == ["recovery_request_ambiguous", "recovery_found_after_ambiguous_request", "recovery_started"]


def test_a_recovery_refused_with_429_is_sent_again_and_still_creates_one_database(local, client):
    render, counter = client
    at, name = restore_point(local, render), f"clone-{next(_names)}"
    local.emulator.faults.add(action="status", match="POST /postgres/*/recovery", status=429, retry_after_s=2)
    clone = render.recover_postgres(local.source, restore_time=at, restore_name=name)
    assert local.clones(name) == [clone.id] and counter.count("POST") == 2
    assert "GET /v1/postgres" not in counter.sent  # refused, so surely not performed: nothing to look up


def test_a_restore_time_render_refuses_is_a_provider_error_in_renders_words_and_creates_nothing(local, client):
    render, counter = client
    local.emulator.recovery.min_age_s = 600
    at, name = restore_point(local, render), f"clone-{next(_names)}"
    with pytest.raises(ProviderError, match=r"400: restoreTime .* is within the last 600 s: cannot restore to within "
                                            r"the last 10 minutes.*\(Render error id bad_request\)") as info:
        render.recover_postgres(local.source, restore_time=at, restore_name=name)
    assert info.value.status_code == 400 and counter.count("POST") == 1 and local.clones(name) == []


def test_recover_wait_connection_info_and_delete_give_typed_values_and_the_wait_never_sleeps(local, client):
    render, counter = client
    at, name = restore_point(local, render), f"clone-{next(_names)}"
    clone = render.recover_postgres(local.source, restore_time=at, restore_name=name)
    assert isinstance(clone, Postgres) and (clone.status, clone.available) == ("creating", False)
    assert clone.created_at == datetime.fromtimestamp(local.clock.now, UTC)  # parsed once, by the client
    seen: list[str] = []
    start, waits = local.clock.now, len(local.clock.waits)
    ready = render.wait_for_postgres(clone.id, timeout_s=600, poll_s=2, on_status=lambda p: seen.append(p.status))
    assert isinstance(ready, Postgres) and ready.available and seen == ["creating", "available"]
    assert 30 <= local.clock.now - start <= 45 and max(local.clock.waits[waits:]) <= 30  # polled on the fake clock
    info = render.postgres_connection_info(clone.id)
    assert isinstance(info, PostgresConnectionInfo) and info.password not in repr(info)
    with psycopg.connect(info.external_connection_string) as conn:
        assert conn.execute("select count(*) from notes").fetchone() == (2,)
    assert render.delete_postgres(clone.id) is True
    with pytest.raises(NotFoundError, match=f"404: postgres {clone.id} not found"):
        render.get_postgres(clone.id)
    assert render.delete_postgres(clone.id, missing_ok=True) is False
    with pytest.raises(NotFoundError):
        render.delete_postgres(clone.id)


def test_a_delete_performed_then_failed_is_retried_and_counts_as_deleted(local, client):
    render, counter = client
    clone = render.recover_postgres(local.source, restore_time=restore_point(local, render),
                                    restore_name=f"clone-{next(_names)}")
    local.emulator.faults.add(action="accept_then_status", match="DELETE /postgres/*", status=502)
    assert render.delete_postgres(clone.id) is True
    assert counter.count("DELETE") == 2 and clone.id not in local.emulator.postgres


def test_waiting_for_a_recovery_that_fails_raises_with_its_status(local, client):
    render, _ = client
    apply_fault(local.emulator, {"action": "fail_recovery", "postgres": "main-db"})
    clone = render.recover_postgres(local.source, restore_time=restore_point(local, render),
                                    restore_name=f"clone-{next(_names)}")
    with pytest.raises(PostgresNotReady, match=f"postgres {clone.id} .* ended recovery_failed") as info:
        render.wait_for_postgres(clone.id, timeout_s=600, poll_s=2)
    assert (info.value.status, info.value.timed_out) == ("recovery_failed", False)


def test_a_wait_that_times_out_raises_after_exactly_its_timeout_on_the_fake_clock(local, client):
    render, _ = client
    local.emulator.recovery.creating_s = 3600
    clone = render.recover_postgres(local.source, restore_time=restore_point(local, render),
                                    restore_name=f"clone-{next(_names)}")
    start = local.clock.now
    with pytest.raises(PostgresNotReady, match=r"still creating after 60s") as info:
        render.wait_for_postgres(clone.id, timeout_s=60, poll_s=5)
    assert info.value.timed_out and local.clock.now - start == pytest.approx(60)


def test_recover_postgres_sends_the_specs_optional_fields_only_when_given(local, client):
    render, _ = client
    at = restore_point(local, render)
    clone = render.recover_postgres(local.source, restore_time=at, restore_name=f"clone-{next(_names)}",
                                    plan="basic_1gb", environment_id="evm-staging")
    assert clone.plan == "basic_1gb" and local.emulator.postgres[clone.id].environment_id == "evm-staging"
    with pytest.raises(ValueError, match="restore_name is required"):
        render.recover_postgres(local.source, restore_time=at, restore_name="")
