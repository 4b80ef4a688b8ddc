"""PostgreSQL advisory locks held on their own connection, naming their holder in ``application_name``.

The release lock (one release at a time, across machines) and the migration
lock (one migration at a time per database) are both advisory locks: held for
as long as their connection lives, released by PostgreSQL when it dies. A
waiting run reads who holds one from ``pg_locks`` and ``pg_stat_activity``:
the holder's ``application_name`` (run id, user@host, CI job) and the time its
connection started. Nothing is written into the database.
"""

from __future__ import annotations

import getpass
import hashlib
import os
import socket
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Mapping

import psycopg
import structlog

from deploypipe.core.polling import poll
from deploypipe.db.pg import connect
from deploypipe.errors import LockHeldError

__all__ = ["Holder", "PgAdvisoryLock", "ci_job", "lock_key"]

log = structlog.get_logger(__name__)

_PREFIX = "deploypipe"
_MAX_APPLICATION_NAME = 63  # PostgreSQL truncates application_name to NAMEDATALEN - 1


def lock_key(name: str) -> int:
    """A signed 64-bit key from a name (pg_try_advisory_lock(bigint))."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def ci_job(env: Mapping[str, str]) -> str:
    """A short name of the CI job running us, when known (GitHub Actions, GitLab, Buildkite, CircleCI, CI)."""
    for prefix, variable in (("gh", "GITHUB_RUN_ID"), ("gl", "CI_JOB_ID"), ("bk", "BUILDKITE_JOB_ID"),
                             ("cc", "CIRCLE_BUILD_NUM")):
        if env.get(variable):
            return f"{prefix}:{env[variable]}"
    return "ci" if env.get("CI", "").lower() not in ("", "0", "false", "no") else ""


@dataclass(frozen=True)
class Holder:
    """Who holds (or takes) a lock: run id, user@host and CI job; ``since`` when read back from PostgreSQL."""

    run_id: str
    user: str
    host: str
    ci: str = ""
    since: datetime | None = None
    backend_pid: int | None = None

    @classmethod
    def of_this_process(cls, run_id: str, env: Mapping[str, str] | None = None) -> Holder:
        return cls(run_id=run_id, user=getpass.getuser(), host=socket.gethostname().split(".")[0],
                   ci=ci_job(os.environ if env is None else env))

    def application_name(self) -> str:
        """``deploypipe <run_id> <user>@<host> [<ci job>]``, cut to what PostgreSQL keeps."""
        text = f"{_PREFIX} {self.run_id} {self.user}@{self.host}"
        if self.ci:
            text += f" {self.ci}"
        return text[:_MAX_APPLICATION_NAME]

    @classmethod
    def parse(cls, application_name: str, since: datetime | None, backend_pid: int | None) -> Holder | None:
        parts = application_name.split(" ")
        if len(parts) < 3 or parts[0] != _PREFIX:
            return None
        user, _, host = parts[2].partition("@")
        return cls(run_id=parts[1], user=user, host=host, ci=parts[3] if len(parts) > 3 else "", since=since,
                   backend_pid=backend_pid)

    def describe(self) -> str:
        text = f"run {self.run_id} by {self.user}@{self.host}"
        if self.ci:
            text += f" (CI job {self.ci})"
        if self.since is not None:
            text += f" since {self.since:%Y-%m-%d %H:%M:%S %Z}".rstrip()
        return text

    def as_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "user": self.user, "host": self.host, "ci": self.ci,
                "since": self.since.isoformat() if self.since else None, "backend_pid": self.backend_pid}


class PgAdvisoryLock:
    """An exclusive advisory lock on ``url`` named ``name``, held on a dedicated connection.

    ``alive()`` says whether the connection (and so the lock) still holds;
    ``holder()`` says who holds the lock when we do not.
    """

    def __init__(self, url: str, name: str, *, holder: Holder, what: str = "lock",
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
                 poll_s: float = 1.0):
        self.url = url
        self.name = name
        self.key = lock_key(name)
        self.me = holder
        self.what = what
        self.sleep = sleep
        self.clock = clock
        self.poll_s = poll_s
        self.conn: psycopg.Connection[Any] | None = None
        self._guard = threading.Lock()

    @property
    def run_id(self) -> str:
        return self.me.run_id

    def holder(self, conn: psycopg.Connection[Any]) -> Holder | str:
        """Who holds the lock: a Holder for a deploypipe run, else a description of the session."""
        row = conn.execute(
            "select a.application_name, a.pid, a.backend_start, coalesce(host(a.client_addr), 'local') "
            "from pg_locks l join pg_stat_activity a on a.pid = l.pid "
            "where l.locktype = 'advisory' and l.granted and "
            "((l.classid::bigint << 32) | l.objid::bigint) = (%s::bigint & x'ffffffffffffffff'::bigint) limit 1",
            (self.key,)).fetchone()
        if row is None:
            return "a session that has just let go"
        parsed = Holder.parse(row[0] or "", row[2], row[1])
        if parsed is not None:
            return parsed
        return f"'{row[0] or '?'}' (backend pid {row[1]}, connected {row[2]:%Y-%m-%d %H:%M:%S%z} from {row[3]})"

    def _try(self, conn: psycopg.Connection[Any]) -> bool:
        row = conn.execute("select pg_try_advisory_lock(%s)", (self.key,)).fetchone()
        return bool(row and row[0])

    def acquire(self, wait_s: float = 0.0) -> None:
        """Take the lock, waiting up to ``wait_s``; LockHeldError naming the holder otherwise."""
        conn = connect(self.url, autocommit=True, application_name=self.me.application_name(),
                       keepalives=1, keepalives_idle=10, keepalives_interval=5, keepalives_count=3)
        taken: bool | None = self._try(conn)
        if not taken and wait_s > 0:  # say whom we queue behind, as the file lock does
            who = self.holder(conn)
            log.info("lock_waiting", lock=f"{self.what} '{self.name}'", wait_s=wait_s,
                     holder=who.describe() if isinstance(who, Holder) else who)
            taken = poll(lambda: True if self._try(conn) else None, timeout_s=wait_s, interval_s=self.poll_s,
                         clock=self.clock, sleep=self.sleep)
        if not taken:
            who = self.holder(conn)
            conn.close()
            described = who.describe() if isinstance(who, Holder) else who
            raise LockHeldError(f"another run holds the {self.what} '{self.name}': {described}",
                                where="PostgreSQL advisory lock",
                                hint="wait for it to finish, or pass --wait-lock SECONDS to queue behind it",
                                holder=who.as_dict() if isinstance(who, Holder) else {"session": who})
        self.conn = conn

    def alive(self) -> str | None:
        """None while the lock's connection answers; otherwise why the lock is lost."""
        with self._guard:
            if self.conn is None:
                return "the lock is not held"
            try:
                self.conn.execute("select 1")
            except psycopg.Error as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                return f"the connection holding the {self.what} broke ({first})"
        return None

    def release(self) -> None:
        with self._guard:
            if self.conn is None:
                return
            try:
                if not self.conn.closed:
                    self.conn.execute("select pg_advisory_unlock(%s)", (self.key,))
            except psycopg.Error:
                pass  # the connection is gone, and with it the lock
            finally:
                self.conn.close()
                self.conn = None

    def __enter__(self) -> PgAdvisoryLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
