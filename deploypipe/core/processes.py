"""Child processes: free loopback ports, commands with logs and timeouts, process-group stops, readiness waits."""

from __future__ import annotations

import functools
import math
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, Mapping

from deploypipe.core.deferral import critical
from deploypipe.core.polling import poll

__all__ = ["TAIL_BYTES", "free_port", "run_command", "stop_group", "tail", "wait_ready"]

TAIL_BYTES = 4000


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_group(proc: subprocess.Popen | None, grace_s: float = 5.0) -> None:
    """SIGTERM the process group of ``proc`` (started with ``start_new_session``), SIGKILL after ``grace_s``.

    A signal that comes meanwhile waits until the group is stopped (see :func:`critical`).
    """
    with critical():
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        except ProcessLookupError:
            proc.wait()


def tail(path: Path, limit: int = TAIL_BYTES) -> str:
    """The last ``limit`` bytes of a file as text (outputs keep a tail; the file keeps everything)."""
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - limit))
        return handle.read().decode("utf-8", "replace")


def run_command(command: str, *, cwd: Path, env: Mapping[str, str], log_path: Path, timeout_s: float | None,
                redact: Callable[[str], str] = lambda text: text) -> tuple[int | None, float]:
    """Run ``command`` with bash; stdout+stderr are streamed line by line, redacted, into ``log_path``.

    Returns (exit code, or None on timeout, and seconds taken). Output is never
    held in memory; on timeout the whole process group is killed.
    """
    start = time.monotonic()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    proc: subprocess.Popen | None = None
    try:
        with critical():  # a signal between the fork and this try would leave the command running unstopped
            proc = subprocess.Popen(["bash", "-c", command], cwd=cwd, env=dict(env), stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
            reader = threading.Thread(target=_pump, args=(proc, log_path, redact), daemon=True)
            reader.start()
        code = poll(functools.partial(_exit_code, proc), timeout_s=math.inf if timeout_s is None else timeout_s,
                    interval_s=0.001, growth=2.0, max_interval_s=0.05)
        if code is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    except BaseException:  # interrupted (SIGINT, SIGTERM): the command must not go on without us
        stop_group(proc, grace_s=2.0)
        raise
    reader.join(timeout=5)
    return code, time.monotonic() - start


def _pump(proc: subprocess.Popen, log_path: Path, redact: Callable[[str], str]) -> None:
    assert proc.stdout is not None
    with open(log_path, "a", encoding="utf-8") as out:
        for raw in iter(proc.stdout.readline, b""):
            out.write(redact(raw.decode("utf-8", "replace")))
            out.flush()


def _exit_code(proc: subprocess.Popen) -> int | None:
    """``proc.poll()``, which a signal must not split: Popen takes its wait lock outside a ``try``."""
    with critical():
        return proc.poll()


def wait_ready(proc: subprocess.Popen, ready: Callable[[], bool], *, timeout_s: float, interval_s: float = 0.1,
               clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> str:
    """Wait until ``ready()`` while ``proc`` runs: ``"ready"``, ``"exited"`` (see proc.returncode) or ``"timeout"``."""

    def check() -> str | None:
        if _exit_code(proc) is not None:
            return "exited"
        return "ready" if ready() else None

    return poll(check, timeout_s=timeout_s, interval_s=interval_s, clock=clock, sleep=sleep) or "timeout"
