"""The pg_restore children of the verified backup: the stream of the growing dump into staging, and post-data.

    Follower(path, staging, dump_done)   # a thread: pg_restore --section=pre-data --section=data
                                         # --single-transaction fed from the backup file while pg_dump writes it
    Restore(argv, env, stdin=, on_line=) # a pg_restore child whose last stderr lines make its error message
    reset_database(url)                  # drop every user schema of a staging database that is overwritten
    post_data_items(path)                # how many post-data entries (indexes, constraints) the dump lists
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from collections import deque
from pathlib import Path
from typing import IO, Any, Callable, Sequence

import psycopg

from deploypipe.core.embedded_pg import pg_bin
from deploypipe.core.processes import stop_group
from deploypipe.core.redact import mask_url
from deploypipe.db.pg import connect, tool_target
from deploypipe.db.staging import Staging

__all__ = ["Follower", "Restore", "pg_tool", "post_data_items", "reset_database"]

CHUNK = 1 << 20
_TAIL_LINES = 20
_VERBOSE = re.compile(r"pg_restore: (processing|finished|launching|creating|connecting|executing|implied) ")


def pg_tool(name: str, args: Sequence[str]) -> list[str]:
    """The command line of PostgreSQL's ``name`` (pg_dump, pg_restore) from the embedded server's binaries."""
    return [pg_bin(name), *args]


class Restore:
    """A pg_restore child whose stderr lines are kept (the last few) and fed to ``on_line``."""

    def __init__(self, argv: list[str], env: dict[str, str], *, stdin: Any = subprocess.DEVNULL,
                 on_line: Callable[[str], None] = lambda line: None):
        self.tail: deque[str] = deque(maxlen=_TAIL_LINES)
        self.proc = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     env={**os.environ, **env}, start_new_session=True)
        self._on_line = on_line
        self._reader = threading.Thread(target=self._read, name="pg_restore-stderr", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for raw in iter(self.proc.stderr.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip()
            self._on_line(line)
            if not _VERBOSE.match(line):  # -v's progress lines would push the error out of the tail
                self.tail.append(line)

    def wait(self) -> int:
        code = self.proc.wait()
        self._reader.join(timeout=5)
        return code

    def message(self) -> str:
        errors = [line for line in self.tail if "error" in line or "could not" in line] or list(self.tail)
        return mask_url(" ".join(errors[-3:])) or "no message"

    def stop(self) -> None:
        stop_group(self.proc, grace_s=2.0)


class Follower(threading.Thread):
    """Streams the growing backup file into ``pg_restore`` (pre-data and data, one transaction) on staging."""

    def __init__(self, path: Path, staging: Staging, dump_done: threading.Event):
        super().__init__(name="backup-follower", daemon=True)
        self.path, self.staging, self.dump_done = path, staging, dump_done
        self.abort = threading.Event()
        self.restore: Restore | None = None
        self.error: BaseException | None = None
        self.code: int | None = None
        self.finished_at = 0.0
        self.url = ""

    def run(self) -> None:
        try:
            self.url = self.staging.ready()
            if self.abort.is_set():
                return
            if self.staging.overwrites:
                reset_database(self.url)
            target, env = tool_target(self.url)
            self.restore = Restore(pg_tool("pg_restore", ["--no-password", "--no-owner", "--no-acl",
                                                          "--exit-on-error", "--single-transaction",
                                                          "--section=pre-data", "--section=data", "-d", target]),
                                   env, stdin=subprocess.PIPE)
            self._pump(self.restore.proc.stdin)
            self.code = self.restore.wait()
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which decides
            self.error = exc
        finally:
            self.finished_at = time.monotonic()

    def _pump(self, sink: IO[bytes] | None) -> None:
        assert sink is not None
        try:
            with open(self.path, "rb", buffering=0) as source:
                while not self.abort.is_set():
                    finished = self.dump_done.is_set()
                    chunk = source.read(CHUNK)
                    if chunk:
                        sink.write(chunk)
                    elif finished:
                        break
                    else:
                        time.sleep(0.05)
            sink.close()
        except BrokenPipeError:  # pg_restore stopped reading: its exit code and message say why
            pass
        if self.abort.is_set() and self.restore is not None:
            self.restore.stop()


def reset_database(url: str) -> None:
    """Drop every user schema of the database ``url`` (CASCADE) and recreate ``public``: it is overwritten."""
    with connect(url, autocommit=True) as conn:
        schemas = [row[0] for row in conn.execute(
            "select nspname from pg_namespace where nspname not in ('pg_catalog', 'information_schema') "
            "and nspname not like 'pg_toast%' and nspname not like 'pg_temp%'").fetchall()]
        for schema in schemas:
            conn.execute(psycopg.sql.SQL("drop schema {} cascade").format(psycopg.sql.Identifier(schema)))
        conn.execute("create schema public")


def post_data_items(path: Path) -> int:
    listing = subprocess.run(pg_tool("pg_restore", ["--list", "--section=post-data", str(path)]),
                             capture_output=True, check=False)
    return sum(1 for line in listing.stdout.decode("utf-8", "replace").splitlines()
               if line.strip() and not line.startswith(";"))


