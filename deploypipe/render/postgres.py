"""Render Postgres instances: read, recover to a point in time (at most one new database per call), delete, wait.

    list_postgres / get_postgres   GET /postgres, GET /postgres/{id}
    recover_postgres               POST /postgres/{id}/recovery: a NEW database with the data at restore_time
    delete_postgres                DELETE /postgres/{id} (204), safe to retry
    wait_for_postgres              GET /postgres/{id} until ``available`` (core.polling.poll on the client's clock)

At most once: a recovery POST is repeated only when Render surely did not
process it (connection refused, 429). After an *ambiguous* failure (5xx, a
dropped connection, a read timeout after sending) the client first looks for
the database the lost request may have created: named ``restore_name``, not
the source, created since a wall-clock timestamp taken just before the first
POST (minus ``lookup_skew_s``). It POSTs again only when none is found, and
looks again after the back-off before that next POST. ``restore_name`` should
be unique (deploypipe.db.pitr adds a random suffix): it is how a lost answer is
found again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Callable

import structlog

from deploypipe.core.polling import poll
from deploypipe.errors import NotFoundError, ProviderError, TransientProviderError
from deploypipe.render.api import RenderApi, iso_time
from deploypipe.render.models import Postgres
from deploypipe.render.once import create_once

__all__ = ["PostgresNotReady", "delete_postgres", "get_postgres", "list_postgres", "recover_postgres",
           "wait_for_postgres"]

log = structlog.get_logger("deploypipe.render")

TimeLike = datetime | float | str
FAILED = frozenset({"recovery_failed", "suspended"})  # a database that will not become available by waiting
_GROWTH = 1.5


class PostgresNotReady(ProviderError):
    """A Postgres did not become available: it ended ``status`` (e.g. recovery_failed) or ``timed_out``."""

    def __init__(self, message: str, *, postgres_id: str, status: str, timed_out: bool, **kwargs: Any):
        self.postgres_id = postgres_id
        self.status = status
        self.timed_out = timed_out
        super().__init__(message, **kwargs)


def list_postgres(api: RenderApi, *, name: str | list[str] | None = None) -> list[Postgres]:
    return [Postgres.from_json(p) for p in api.pages("/postgres", "postgres", {"name": name})]


def get_postgres(api: RenderApi, postgres_id: str) -> Postgres:
    return Postgres.from_json(api.call("GET", f"/postgres/{postgres_id}", resource=f"postgres {postgres_id}"))


def recover_postgres(api: RenderApi, postgres_id: str, *, restore_time: TimeLike, restore_name: str,
                     plan: str | None = None, environment_id: str | None = None,
                     datadog_api_key: str | None = None, datadog_site: str | None = None) -> Postgres:
    """A new database holding ``postgres_id``'s data at ``restore_time``; at most one is created per call."""
    if not restore_name:
        raise ValueError("recover_postgres: restore_name is required (it finds a recovery whose answer was lost)")
    optional = {"plan": plan, "environmentId": environment_id, "datadogApiKey": datadog_api_key,
                "datadogSite": datadog_site}
    body = {"restoreTime": iso_time(restore_time), "restoreName": restore_name,
            **{key: value for key, value in optional.items() if value is not None}}
    path, since = f"/postgres/{postgres_id}/recovery", api.wall_clock() - api.retry.lookup_skew_s

    def lookup() -> Postgres | None:
        for found in list_postgres(api, name=restore_name):
            created = found.created_at.timestamp() if found.created_at else None
            if found.id != postgres_id and found.name == restore_name and (created is None or created >= since):
                return found
        return None

    created = create_once(api, what="recover postgres", path=path, body=body, resource=f"postgres {postgres_id}",
                          lookup=lookup,
                          parse=lambda data: Postgres.from_json(data) if isinstance(data, dict) and data.get("id")
                          else None,
                          names=("recovery_request_ambiguous", "recovery_found_after_ambiguous_request",
                                 "recovery_queued"),
                          describe=lambda found: {"new_postgres_id": found.id, "status": found.status},
                          context={"postgres_id": postgres_id},
                          missing_hint=f"look for a database named {restore_name} in the Render dashboard")
    log.info("recovery_started", postgres_id=postgres_id, new_postgres_id=created.id, restore_time=body["restoreTime"],
             status=created.status)
    return created


def delete_postgres(api: RenderApi, postgres_id: str, *, missing_ok: bool = False) -> bool:
    """Delete a Postgres (irreversible); True when this call deleted it, False when it was already gone.

    Retried like any idempotent request; a 404 after an attempt that may have been processed means that attempt
    deleted it (True). Without ``missing_ok`` a 404 on the first attempt is a NotFoundError.
    """
    path, ambiguous = f"/postgres/{postgres_id}", False
    for attempt in api.retrying(f"DELETE {path}"):
        with attempt:
            try:
                api.send("DELETE", path, resource=f"postgres {postgres_id}")
                deleted = True
            except NotFoundError:
                if not (missing_ok or ambiguous):
                    raise
                deleted = ambiguous
            except TransientProviderError as exc:
                ambiguous = ambiguous or exc.sent
                raise
    log.info("postgres_deleted" if deleted else "postgres_already_gone", postgres_id=postgres_id)
    return deleted


def wait_for_postgres(api: RenderApi, postgres_id: str, *, timeout_s: float, poll_s: float = 5.0,
                      max_poll_s: float = 30.0, on_status: Callable[[Postgres], None] | None = None) -> Postgres:
    """Poll until the database is ``available``; intervals grow from ``poll_s`` by 1.5x up to ``max_poll_s``.

    Each status change is logged once (``postgres_status``) and passed to ``on_status``. PostgresNotReady when it
    ends recovery_failed or suspended, or when ``timeout_s`` passes (measured on the client's clock).
    """
    latest: list[Postgres] = []

    def check() -> Postgres | None:
        db = get_postgres(api, postgres_id)
        before = latest[0].status if latest else None
        latest[:] = [db]
        if db.status != before:
            log.info("postgres_status", postgres_id=postgres_id, **{"from": before, "to": db.status})
            if on_status is not None:
                on_status(db)
        if db.status in FAILED:
            raise PostgresNotReady(f"postgres {postgres_id} ({db.name}) ended {db.status}", where="wait for postgres",
                                   postgres_id=postgres_id, status=db.status, timed_out=False,
                                   hint="look at the database's events in the Render dashboard")
        return db if db.available else None

    final = poll(check, timeout_s=timeout_s, interval_s=max(0.1, poll_s), clock=api.clock, sleep=api.sleep,
                 growth=_GROWTH, max_interval_s=max_poll_s)
    if final is not None:
        return final
    status = latest[0].status if latest else "unknown"
    raise PostgresNotReady(f"postgres {postgres_id} still {status} after {timeout_s:g}s", where="wait for postgres",
                           postgres_id=postgres_id, status=status, timed_out=True,
                           hint="raise the timeout for large databases (a recovery can take a long time)")
