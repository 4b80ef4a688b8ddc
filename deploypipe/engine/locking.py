"""One release at a time: a file lock on this machine and, with a database target, an advisory lock across machines.

The file lock uses ``flock``, which the kernel releases when the holder dies,
so a stale lock (holder killed) is detected by simply being able to take it;
the previous holder's record is then logged as taken over. The release lock
(:class:`ReleaseLock`) adds a PostgreSQL advisory lock on the pipeline's
first database target, held on its own connection from before the first stage
until the rollback ends, and watched: a lost connection is noticed between
stages and ends the run safely (see :meth:`ReleaseLock.lost`).
"""

from __future__ import annotations

import fcntl
import getpass
import json
import os
import re
import socket
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Callable, Protocol

import structlog

from deploypipe.core.polling import poll
from deploypipe.db.advisory import Holder, PgAdvisoryLock
from deploypipe.errors import DeployPipeError, LockHeldError

__all__ = ["FileLock", "Lock", "ReleaseLock"]

log = structlog.get_logger("deploypipe.lock")


class Lock(Protocol):
    def acquire(self, wait_s: float = 0.0) -> None: ...

    def release(self) -> None: ...


class FileLock:
    """An exclusive ``flock`` on ``<state_dir>/locks/<key>.lock`` holding who/when as JSON."""

    def __init__(self, state_dir: Path, key: str, run_id: str, *, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic, poll_s: float = 0.5):
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", key)
        self.path = state_dir / "locks" / f"{safe}.lock"
        self.key = key
        self.run_id = run_id
        self.sleep = sleep
        self.clock = clock
        self.poll_s = poll_s
        self._fd: int | None = None

    def _holder(self, fd: int) -> dict[str, str]:
        os.lseek(fd, 0, os.SEEK_SET)
        raw = os.read(fd, 4096).decode("utf-8", "replace")
        try:
            return json.loads(raw) if raw.strip() else {}
        except json.JSONDecodeError:
            return {}

    def _take(self, fd: int) -> bool | None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None
        return True

    def acquire(self, wait_s: float = 0.0) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        if not self._take(fd):
            log.info("lock_waiting", lock=self.key, holder=self._describe(self._holder(fd)), wait_s=wait_s)
            if not poll(lambda: self._take(fd), timeout_s=wait_s, interval_s=self.poll_s, clock=self.clock,
                        sleep=self.sleep):
                holder = self._holder(fd)
                os.close(fd)
                raise LockHeldError(f"another deploy holds the lock '{self.key}': {self._describe(holder)}",
                                    where=str(self.path), holder=holder,
                                    hint="wait for it to finish, or pass --wait-lock SECONDS to queue behind it")
        previous = self._holder(fd)
        if previous.get("run_id") and previous.get("released") != "true":
            log.warning("lock_stale_taken_over", lock=self.key, previous_run=previous.get("run_id"),
                        previous_pid=previous.get("pid"), previous_host=previous.get("host"),
                        since=previous.get("since"))
        record = {"run_id": self.run_id, "pid": str(os.getpid()), "host": socket.gethostname(),
                  "user": getpass.getuser(), "since": datetime.now(UTC).isoformat(timespec="seconds")}
        self._write(fd, record)
        self._fd = fd

    @staticmethod
    def _describe(holder: dict[str, str]) -> str:
        return (f"run {holder.get('run_id', '?')} (pid {holder.get('pid', '?')} on {holder.get('host', '?')}, "
                f"user {holder.get('user', '?')}) since {holder.get('since', '?')}")

    @staticmethod
    def _write(fd: int, record: dict[str, str]) -> None:
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(record).encode())

    def release(self) -> None:
        if self._fd is None:
            return
        record = self._holder(self._fd)
        record["released"] = "true"
        self._write(self._fd, record)
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None


class ReleaseLock:
    """The run's release lock: the machine's file lock, then the database's advisory lock when there is one.

    A watcher thread checks every ``watch_s`` that the advisory lock's
    connection still answers; :meth:`lost` says why it does not (the runner
    asks between stages), and :meth:`regain` tries to take it back before a
    rollback.
    """

    def __init__(self, file_lock: FileLock, advisory: PgAdvisoryLock | None = None, *, watch_s: float = 5.0):
        self.file_lock = file_lock
        self.advisory = advisory
        self.watch_s = watch_s
        self._lost: str | None = None
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    @classmethod
    def for_run(cls, state_dir: Path, key: str, run_id: str, *, database_url: str | None, env: Any,
                sleep: Callable[[float], None], clock: Callable[[], float]) -> ReleaseLock:
        file_lock = FileLock(state_dir, key, run_id, sleep=sleep, clock=clock)
        advisory = None
        if database_url:
            advisory = PgAdvisoryLock(database_url, f"deploypipe-release:{key}", what="release lock",
                                      holder=Holder.of_this_process(run_id, env), sleep=sleep, clock=clock)
        return cls(file_lock, advisory)

    def acquire(self, wait_s: float = 0.0) -> None:
        self.file_lock.acquire(wait_s)
        if self.advisory is None:
            return
        try:
            self.advisory.acquire(wait_s)
        except BaseException:
            self.file_lock.release()
            raise
        self._watcher = threading.Thread(target=self._watch, name="release-lock-watcher", daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        assert self.advisory is not None
        while not self._stop.wait(self.watch_s):
            reason = self.advisory.alive()
            if reason is not None:
                self._lost = reason
                log.error("release_lock_lost", reason=reason)
                return

    def lost(self) -> str | None:
        """Why the release lock no longer holds (checked now, not only by the watcher), or None."""
        if self.advisory is None:
            return None
        if self._lost is None:
            self._lost = self.advisory.alive()
        return self._lost

    def regain(self) -> str | None:
        """After a loss, take the advisory lock back at once; None when held again, else why not."""
        if self.lost() is None or self.advisory is None:
            return None
        self.advisory.release()
        try:
            self.advisory.acquire(0.0)
        except DeployPipeError as exc:  # held by another run now, or the database is still unreachable
            return exc.message
        self._lost = None
        log.warning("release_lock_regained", lock=self.advisory.name)
        return None

    def release(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=self.watch_s + 1)
        try:
            if self.advisory is not None:
                self.advisory.release()
        finally:
            self.file_lock.release()
