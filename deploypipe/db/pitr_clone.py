"""Restore points and PITR clones on Render: a moment to come back to; a new database holding it, always deleted.

``record_restore_point`` checks that Render can recover the database and
returns the exact moment (read after Render answered). ``recovery_clone``
asks Render for a NEW database with the data of a moment Render allows,
waits until it is available, yields its connection URL (a secret, never
logged) and deletes it afterwards: on success, on failure, on
KeyboardInterrupt (and SIGTERM turned into one); a signal that arrives while
it is being deleted waits for the deletion. ``client`` is a RenderClient, or
anything with ``PitrClient``'s methods (deploypipe.db does not import
deploypipe.render). Render's limits: the window (``startsAt``: the past 3 or
7 days) and not within the last 10 minutes (``min_age_s``: 600 on Render; the
local Render's knob may be 0, and then no clock-skew margin applies, as it
shares our clock).
"""

from __future__ import annotations

import secrets
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Callable, Iterator, Protocol, Sequence

import structlog

from deploypipe.errors import StageErrored, StageFailed

__all__ = ["BILLING_NOTE", "PitrClient", "PitrClone", "RestorePoint", "iso", "record_restore_point",
           "recovery_clone"]

log = structlog.get_logger("deploypipe.db.pitr")

BILLING_NOTE = "the PITR clone bills while it exists; it is deleted afterwards"
_HINTS = {"BACKUP_NOT_READY": "Render has not finished the database's first backup yet: retry later, or use mode: dump",
          "NOT_AVAILABLE": "point-in-time recovery needs a paid Render Postgres instance: use mode: dump"}


# -- what deploypipe needs of the Render client ------------------------------------------------------------------
class _Recovery(Protocol):
    @property
    def status(self) -> str: ...
    @property
    def starts_at(self) -> datetime | None: ...


class _Postgres(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def status(self) -> str: ...


class _ConnectionInfo(Protocol):
    @property
    def external_connection_string(self) -> str: ...


class PitrClient(Protocol):
    """The RenderClient methods this module calls."""

    def postgres_recovery_info(self, postgres_id: str) -> _Recovery: ...
    def recover_postgres(self, postgres_id: str, *, restore_time: datetime, restore_name: str) -> _Postgres: ...
    def wait_for_postgres(self, postgres_id: str, *, timeout_s: float, poll_s: float = ...) -> _Postgres: ...
    def postgres_connection_info(self, postgres_id: str) -> _ConnectionInfo: ...
    def list_postgres(self, *, name: str | list[str] | None = ...) -> Sequence[_Postgres]: ...
    def delete_postgres(self, postgres_id: str, *, missing_ok: bool = ...) -> bool: ...


# -- values -------------------------------------------------------------------------------------------------------
def _moment(value: datetime | float) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromtimestamp(value, UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse(text: str) -> datetime:
    """A moment this module wrote with :func:`iso` (journal and report)."""
    return _moment(datetime.fromisoformat(text.strip()))


@dataclass(frozen=True)
class RestorePoint:
    """A moment Render can recover ``postgres_id`` to (UTC, microseconds), and where its window started then."""

    postgres_id: str
    at: datetime
    window_starts_at: datetime | None = None

    @property
    def iso(self) -> str:
        return iso(self.at)

    def to_dict(self) -> dict[str, Any]:
        """JSON for the journal (``from_dict`` reads it back)."""
        return {"postgres_id": self.postgres_id, "at": self.iso,
                "window_starts_at": iso(self.window_starts_at) if self.window_starts_at else None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RestorePoint:
        starts = data.get("window_starts_at")
        return cls(postgres_id=str(data["postgres_id"]), at=_parse(str(data["at"])),
                   window_starts_at=_parse(starts) if starts else None)


@dataclass(frozen=True)
class PitrClone:
    """A clone made by ``recovery_clone``: its id and name, the time it holds and why; ``url`` is a secret."""

    postgres_id: str
    name: str
    restore_time: datetime
    requested_time: datetime
    note: str
    url: str = field(repr=False)

    def __repr__(self) -> str:
        return (f"PitrClone(postgres_id={self.postgres_id!r}, name={self.name!r}, "
                f"restore_time={iso(self.restore_time)!r}, url='***')")

    __str__ = __repr__


# -- restore points -----------------------------------------------------------------------------------------------
def _available(client: PitrClient, postgres_id: str, where: str) -> datetime | None:
    """Recovery must be AVAILABLE (else StageFailed); returns the window's start."""
    info = client.postgres_recovery_info(postgres_id)
    if info.status != "AVAILABLE":
        raise StageFailed(f"point-in-time recovery of postgres {postgres_id} is {info.status}, not AVAILABLE",
                          where=where, hint=_HINTS.get(info.status, "look at the database in the Render dashboard"))
    return _moment(info.starts_at) if info.starts_at else None


def record_restore_point(client: PitrClient, postgres_id: str, now: Callable[[], float] = time.time) -> RestorePoint:
    """The exact moment to come back to: recovery is AVAILABLE and ``now()`` (read after Render answered) lies in the
    window; StageFailed otherwise."""
    starts = _available(client, postgres_id, "pitr restore point")
    at = _moment(now())
    if starts is not None and at < starts:
        raise StageFailed(f"the restore point {iso(at)} is before postgres {postgres_id}'s recovery window, which "
                          f"starts at {iso(starts)}", where="pitr restore point",
                          hint="check this machine's clock (it must agree with Render's)")
    point = RestorePoint(postgres_id=postgres_id, at=at, window_starts_at=starts)
    log.info("restore_point_recorded", postgres_id=postgres_id, at=point.iso,
             window_starts_at=iso(starts) if starts else None)
    return point


# -- clones -------------------------------------------------------------------------------------------------------
def _choose_time(client: PitrClient, postgres_id: str, requested: datetime, *, min_age_s: float, exact: bool,
                 max_wait_s: float, clock_skew_s: float, sleep: Callable[[float], None],
                 clock: Callable[[], float]) -> tuple[datetime, str]:
    """(restore time, why): the requested one when Render allows it (waiting for it with ``exact``), else the newest
    time Render allows."""
    margin = clock_skew_s if min_age_s > 0 else 0.0

    def newest_allowed() -> datetime:
        return _moment(clock() - min_age_s - margin)

    wait_s = (requested - newest_allowed()).total_seconds()
    if wait_s > 0 and exact:
        if wait_s > max_wait_s:
            raise StageFailed(f"Render cannot restore to {iso(requested)} for another {wait_s:.0f} s (not within the "
                              f"last {min_age_s:g} s)", where="pitr clone",
                              hint=f"wait and retry, or allow a longer wait than {max_wait_s:g} s")
        log.info("pitr_waiting_for_restore_point", restore_time=iso(requested), wait_s=round(wait_s, 1))
        sleep(wait_s)
    starts = _available(client, postgres_id, "pitr clone")
    chosen, note = requested, f"the restore point {iso(requested)}"
    if wait_s > 0 and not exact:
        chosen = newest_allowed()
        note = (f"the restore point {iso(requested)} is within the last {min_age_s:g} s, which Render cannot restore "
                f"to: cloned the newest allowed time {iso(chosen)} instead ({wait_s:.0f} s earlier; writes in between "
                "are not in the clone)")
    if starts is not None and chosen < starts:
        raise StageFailed(f"{iso(chosen)} is before postgres {postgres_id}'s recovery window, which starts at "
                          f"{iso(starts)}", where="pitr clone",
                          hint="Render keeps 3 or 7 days; a brand-new database has no restorable moment before its "
                               "first backup plus 10 minutes")
    log.info("pitr_clone_time_chosen", postgres_id=postgres_id, requested=iso(requested), restore_time=iso(chosen),
             note=note)
    return chosen, note


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """SIGINT/SIGTERM wait until the block is done (main thread only), then reach their own handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = {number: signal.signal(number, lambda signum, frame: received.append(signum))
                for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        for signum in dict.fromkeys(received):
            log.warning("pitr_signal_after_clone_cleanup", signal=signal.Signals(signum).name)
            signal.raise_signal(signum)


def _delete_clone(client: PitrClient, clone_id: str | None, restore_name: str, source_id: str) -> str | None:
    """Delete the clone (found by name when its id never arrived); returns a problem, or None when it is gone."""
    try:
        ids = [clone_id] if clone_id else [p.id for p in client.list_postgres(name=restore_name)
                                           if p.name == restore_name and p.id != source_id]
        for found in ids:
            client.delete_postgres(found, missing_ok=True)
            log.info("pitr_clone_deleted", clone_id=found, name=restore_name)
    except Exception as exc:  # noqa: BLE001 - reported, with what to delete by hand
        problem = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        log.error("pitr_clone_not_deleted", clone_id=clone_id, name=restore_name, error=problem,
                  hint="delete it in the Render dashboard: it bills while it exists")
        return problem
    return None


@contextmanager
def recovery_clone(client: PitrClient, postgres_id: str, restore_time: RestorePoint | datetime | float, name: str, *,
                   min_age_s: float = 600.0, exact: bool = False, max_wait_s: float = 900.0,
                   timeout_s: float = 3600.0, poll_s: float = 2.0, clock_skew_s: float = 30.0,
                   sleep: Callable[[float], None] = time.sleep,
                   clock: Callable[[], float] = time.time) -> Iterator[PitrClone]:
    """A PITR clone of ``postgres_id`` at ``restore_time`` while the block runs; deleted afterwards, always.

    The clone is named ``name`` plus a random suffix (how a lost answer is found again). The restore time is the one
    asked for when Render allows it, else (``exact=False``) the newest allowed one, said in ``PitrClone.note`` and the
    log; with ``exact`` it waits up to ``max_wait_s`` for the asked one. ``clock`` is the wall clock (epoch seconds);
    the wait for the clone polls from ``poll_s`` (growing 1.5x up to 30 s) on the client's own clock.
    Raises StageFailed (recovery not available, no restorable time), the client's ProviderError (Render refused,
    the clone ended recovery_failed or did not become available within ``timeout_s``), StageErrored when the clone
    could not be deleted after a block that succeeded (an error of the block itself is never replaced).
    """
    requested = restore_time.at if isinstance(restore_time, RestorePoint) else _moment(restore_time)
    chosen, note = _choose_time(client, postgres_id, requested, min_age_s=min_age_s, exact=exact,
                                max_wait_s=max_wait_s, clock_skew_s=clock_skew_s, sleep=sleep, clock=clock)
    restore_name = f"{name}-{secrets.token_hex(3)}"
    clone_id: str | None = None
    try:
        clone_id = client.recover_postgres(postgres_id, restore_time=chosen, restore_name=restore_name).id
        log.info("pitr_clone_created", postgres_id=postgres_id, clone_id=clone_id, name=restore_name,
                 restore_time=iso(chosen), billing=BILLING_NOTE)
        client.wait_for_postgres(clone_id, timeout_s=timeout_s, poll_s=poll_s)
        url = client.postgres_connection_info(clone_id).external_connection_string
        yield PitrClone(postgres_id=clone_id, name=restore_name, restore_time=chosen, requested_time=requested,
                        note=note, url=url)
    except BaseException:
        with _signals_deferred():
            _delete_clone(client, clone_id, restore_name, postgres_id)
        raise
    with _signals_deferred():
        problem = _delete_clone(client, clone_id, restore_name, postgres_id)
    if problem:
        raise StageErrored(f"the PITR clone {clone_id or restore_name} could not be deleted: {problem}",
                           where="pitr clone", hint="delete it in the Render dashboard: it bills while it exists")
