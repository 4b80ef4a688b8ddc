"""One deploy at a time per target: a file lock on this machine, plus any cross-machine lock.

The file lock uses ``flock``, which the kernel releases when the holder dies,
so a stale lock (holder killed) is detected by simply being able to take it;
the previous holder's record is then logged as taken over. Locks that must
work across machines (the PostgreSQL advisory lock of ``db.migrate``) share the
same small shape: ``acquire(wait_s)`` and ``release()``.
"""

from __future__ import annotations

import fcntl
import getpass
import json
import os
import re
import socket
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Callable, Protocol

import structlog

from deploypipe.errors import LockHeldError

__all__ = ["FileLock", "Lock"]

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

    def acquire(self, wait_s: float = 0.0) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = self.clock() + wait_s
        announced = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = self._holder(fd)
                who = (f"run {holder.get('run_id', '?')} (pid {holder.get('pid', '?')} on {holder.get('host', '?')}, "
                       f"user {holder.get('user', '?')}) since {holder.get('since', '?')}")
                if self.clock() >= deadline:
                    os.close(fd)
                    raise LockHeldError(
                        f"another deploy holds the lock '{self.key}': {who}", where=str(self.path),
                        hint="wait for it to finish, or pass --wait-lock SECONDS to queue behind it",
                        holder=holder,
                    ) from None
                if not announced:
                    log.info("lock_waiting", lock=self.key, holder=who, wait_s=wait_s)
                    announced = True
                self.sleep(min(self.poll_s, max(0.0, deadline - self.clock())))
        previous = self._holder(fd)
        if previous.get("run_id") and previous.get("released") != "true":
            log.warning("lock_stale_taken_over", lock=self.key, previous_run=previous.get("run_id"),
                        previous_pid=previous.get("pid"), previous_host=previous.get("host"),
                        since=previous.get("since"))
        record = {"run_id": self.run_id, "pid": str(os.getpid()), "host": socket.gethostname(),
                  "user": getpass.getuser(), "since": datetime.now(UTC).isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(record).encode())
        self._fd = fd
        log.debug("lock_acquired", lock=self.key)

    def release(self) -> None:
        if self._fd is None:
            return
        record = self._holder(self._fd)
        record["released"] = "true"
        os.ftruncate(self._fd, 0)
        os.lseek(self._fd, 0, os.SEEK_SET)
        os.write(self._fd, json.dumps(record).encode())
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
