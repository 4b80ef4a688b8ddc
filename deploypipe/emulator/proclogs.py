"""Child processes whose output becomes log lines: each line goes to the deploy's log file and to a line sink.

Build, pre-deploy and job commands run to completion (``run_logged``); an
instance runs until stopped (``start_logged``: one thread per output stream,
so stdout and stderr lines arrive as they are written). Every command runs
with bash in its own process group, so a cancel can stop all of it.
"""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path
from typing import IO, Callable, Mapping

__all__ = ["LineSink", "run_logged", "start_logged"]

LineSink = Callable[[str], None]


def _pump(stream: IO[bytes], log_path: Path, sink: LineSink) -> None:
    with stream, open(log_path, "ab") as out:
        for raw in iter(stream.readline, b""):
            out.write(raw)
            out.flush()
            sink(raw.decode("utf-8", "replace").rstrip("\r\n"))


def _popen(command: str, cwd: Path, env: Mapping[str, str], stderr: int) -> subprocess.Popen:
    return subprocess.Popen(["bash", "-c", command], cwd=cwd, env=dict(env), stdout=subprocess.PIPE, stderr=stderr,
                            stdin=subprocess.DEVNULL, start_new_session=True)


def run_logged(command: str, *, cwd: Path, env: Mapping[str, str], log_path: Path, sink: LineSink,
               started: Callable[[subprocess.Popen], None] = lambda proc: None) -> int:
    """Run ``command`` to its end (``started`` gets the process, e.g. to cancel it); its exit status."""
    with open(log_path, "ab") as out:
        out.write(f"$ {command}\n".encode())
    proc = _popen(command, cwd, env, subprocess.STDOUT)
    started(proc)
    assert proc.stdout is not None
    _pump(proc.stdout, log_path, sink)
    return proc.wait()


def start_logged(command: str, *, cwd: Path, env: Mapping[str, str], log_path: Path,
                 sink: LineSink) -> subprocess.Popen:
    """Start ``command``; its stdout and stderr lines reach ``sink`` (from two daemon threads) until it exits."""
    proc = _popen(command, cwd, env, subprocess.PIPE)
    for stream in (proc.stdout, proc.stderr):
        assert stream is not None
        threading.Thread(target=_pump, args=(stream, log_path, sink), name=f"output-{proc.pid}", daemon=True).start()
    return proc
