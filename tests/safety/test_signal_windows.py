"""A signal lands between two bytecodes of the main thread; these tests put it in the narrow places where an
exception would leave a lock held or a child unstopped (a loaded machine puts it there now and then; here it is put
there on purpose), and check that the signal waits until that place is behind it.

The locks below stand in for the real ones and fail on a second acquire by the thread that holds them: that
acquire is the deadlock a real run would sit in until it is killed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
import structlog
import structlog._output
from harness import events_of

from deploypipe.core.processes import run_command, stop_group
from deploypipe.core.redact import Redactor
from deploypipe.engine.journal import Journal
from deploypipe.engine.signals import Interrupted, interruptible, shielded
from deploypipe.output.logsetup import configure_logging


class SelfDeadlockTrap:
    """A Lock that raises instead of waiting forever for itself; ``on_taken`` runs after a non-blocking take."""

    def __init__(self, on_taken: Any = None):
        self._lock = threading.Lock()
        self._owner: int | None = None
        self.on_taken = on_taken

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if self._lock.locked() and self._owner == threading.get_ident():
            raise AssertionError("this thread waits for a lock it holds itself: a deadlock")
        taken = self._lock.acquire(blocking, timeout)
        if taken:
            self._owner = threading.get_ident()
            if not blocking and self.on_taken is not None:
                on_taken, self.on_taken = self.on_taken, None
                on_taken()  # the signal's handler runs right here, before the caller's `try`
        return taken

    def release(self) -> None:
        self._owner = None
        self._lock.release()

    def locked(self) -> bool:
        return self._lock.locked()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


@pytest.fixture
def started(monkeypatch):
    """The Popen objects run_command creates (killed and reaped at the end, whatever the test left running)."""
    procs: list[subprocess.Popen] = []
    yield procs
    for proc in procs:
        proc._waitpid_lock = threading.Lock()  # a trap left held by a failed test must not fail the clean-up
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _sigint() -> None:
    signal.raise_signal(signal.SIGINT)


def test_a_signal_just_after_popen_takes_its_wait_lock_stops_the_command_instead_of_deadlocking(
        tmp_path: Path, monkeypatch, started):
    class Trapped(subprocess.Popen):
        def __init__(self, *args: Any, **kwargs: Any):
            super().__init__(*args, **kwargs)
            started.append(self)
            self._waitpid_lock = SelfDeadlockTrap(on_taken=_sigint)  # Popen.poll: acquire(False), then `try`

    monkeypatch.setattr(subprocess, "Popen", Trapped)
    with interruptible(), pytest.raises(Interrupted):
        run_command("sleep 300", cwd=tmp_path, env=dict(os.environ), log_path=tmp_path / "log", timeout_s=1800)
    (proc,) = started
    assert proc.returncode is not None, "the command was left running"


def test_a_signal_while_popen_starts_the_command_waits_until_the_command_can_be_stopped(
        tmp_path: Path, monkeypatch, started):
    class Trapped(subprocess.Popen):
        def __init__(self, *args: Any, **kwargs: Any):
            super().__init__(*args, **kwargs)
            started.append(self)
            _sigint()  # the child runs; Popen has not returned yet (e.g. it still reads the exec error pipe)

    monkeypatch.setattr(subprocess, "Popen", Trapped)
    with interruptible(), pytest.raises(Interrupted):
        run_command("sleep 300", cwd=tmp_path, env=dict(os.environ), log_path=tmp_path / "log", timeout_s=None)
    (proc,) = started
    assert proc.returncode is not None, "the command was left running, nothing stops it"


def test_a_second_signal_while_a_command_is_being_stopped_waits_until_it_is_stopped(started):
    proc = subprocess.Popen(["sleep", "300"], start_new_session=True)
    started.append(proc)
    proc._waitpid_lock = SelfDeadlockTrap(on_taken=_sigint)  # type: ignore[attr-defined]
    with interruptible(), pytest.raises(Interrupted):
        stop_group(proc, grace_s=2.0)
    assert proc.returncode is not None, "the stop was cut short, the command runs on"


def test_a_signal_during_a_rollback_while_the_journal_writes_is_journalled_after_that_write(tmp_path: Path):
    journal = Journal(tmp_path, "run-1", Redactor())
    journal._emitting = SelfDeadlockTrap()  # type: ignore[assignment]
    journal.subscribe(lambda record: _sigint() if record["event"] == "compensating" else None)
    try:
        with shielded(lambda signum: journal.emit("interrupted", signal=signal.Signals(signum).name)):
            journal.emit("compensating", stage="change")
    finally:
        journal.close()
    assert [(e["event"], e.get("signal")) for e in events_of(tmp_path)] == [
        ("compensating", None), ("interrupted", "SIGINT")]


def test_a_signal_during_a_rollback_while_a_log_line_is_written_is_logged_after_that_line(tmp_path: Path):
    class Stderr:
        def __init__(self) -> None:
            self.lines: list[str] = []

        def write(self, text: str) -> int:
            self.lines.append(text)
            if "compensating" in text:
                _sigint()  # the handler logs too, while the main thread is inside the logger's write
            return len(text)

        def flush(self) -> None:
            pass

        def isatty(self) -> bool:
            return False

    stream = Stderr()
    structlog._output.WRITE_LOCKS[stream] = SelfDeadlockTrap()  # type: ignore[index]  # the logger's file lock
    configure_logging(json_lines=True, redactor=Redactor(), stream=stream)  # type: ignore[arg-type]
    log = structlog.get_logger()
    try:
        with shielded(lambda signum: log.warning("interrupted", signal=signal.Signals(signum).name)):
            log.info("compensating", stage="change")
    finally:
        structlog.reset_defaults()
    assert [json.loads(line)["event"] for line in stream.lines] == ["compensating", "interrupted"]
