"""A PostgreSQL advisory lock: one migration at a time per database, across machines.

Held on a dedicated connection for as long as the migration runs. The holder
sets ``application_name`` so a waiting pipeline can say who holds it.
"""

from __future__ import annotations

import hashlib
import socket
import time
from typing import Callable

import psycopg

from deploypipe.db.pg import connect
from deploypipe.errors import LockHeldError

__all__ = ["PgAdvisoryLock", "lock_key"]


def lock_key(name: str) -> int:
    """A signed 64-bit key from a name (pg_try_advisory_lock(bigint))."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


class PgAdvisoryLock:
    def __init__(self, url: str, name: str, *, run_id: str, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic, poll_s: float = 1.0):
        self.url = url
        self.name = name
        self.key = lock_key(name)
        self.run_id = run_id
        self.sleep = sleep
        self.clock = clock
        self.poll_s = poll_s
        self.conn: psycopg.Connection | None = None

    def holder(self, conn: psycopg.Connection) -> str:
        row = conn.execute(
            "select a.application_name, a.pid, a.backend_start, coalesce(host(a.client_addr), 'local') "
            "from pg_locks l join pg_stat_activity a on a.pid = l.pid "
            "where l.locktype = 'advisory' and l.granted and "
            "((l.classid::bigint << 32) | l.objid::bigint) = (%s::bigint & x'ffffffffffffffff'::bigint) limit 1",
            (self.key,)).fetchone()
        if row is None:
            return "an unknown session"
        return f"'{row[0] or '?'}' (backend pid {row[1]}, connected {row[2]:%Y-%m-%d %H:%M:%S%z} from {row[3]})"

    def acquire(self, wait_s: float = 0.0) -> None:
        conn = connect(self.url, autocommit=True,
                       application_name=f"deploypipe run {self.run_id} host {socket.gethostname()}"[:63])
        deadline = self.clock() + wait_s
        while not conn.execute("select pg_try_advisory_lock(%s)", (self.key,)).fetchone()[0]:
            if self.clock() >= deadline:
                who = self.holder(conn)
                conn.close()
                raise LockHeldError(f"another migration holds the database lock '{self.name}': {who}",
                                    hint="wait for it to finish (raise lock_wait_s to queue behind it)")
            self.sleep(min(self.poll_s, max(0.0, deadline - self.clock())))
        self.conn = conn

    def release(self) -> None:
        if self.conn is not None:
            try:
                self.conn.execute("select pg_advisory_unlock(%s)", (self.key,))
            finally:
                self.conn.close()
                self.conn = None

    def __enter__(self) -> PgAdvisoryLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
