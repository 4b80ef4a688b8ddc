"""What SIGINT and SIGTERM do to a run: interrupt a stage, but never a rollback that is under way.

Under :func:`interruptible` (the command line's boundary) SIGINT and SIGTERM
raise :class:`Interrupted`, which carries the signal's number: the running
stage stops and the runner decides as for any failure (nothing changed:
exit 1; production changed: roll back). While a rollback
runs, :func:`shielded` reports further signals instead of letting them abort
it, so a CI cancel (GitHub Actions: SIGINT, SIGTERM ~7.5 s later, SIGKILL ~2.5 s
after that) finishes as much of the rollback as it can; the journal says what
was left undone and ``rollback --run`` finishes the job. Both handlers hold a
signal that comes inside a :func:`~deploypipe.core.deferral.critical` section
(a child being started, Popen's wait lock, the journal's lock) until it ends.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from types import FrameType
from typing import Callable, Iterator

from deploypipe.core.deferral import hold, holding

__all__ = ["Interrupted", "interruptible", "shielded", "signal_name", "signum_of"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """A signal stopped the work; ``signum`` says which (SIGINT: Ctrl-C, SIGTERM: e.g. a cancelled CI job)."""

    def __init__(self, signum: int):
        super().__init__(signal_name(signum))
        self.signum = signum


def signum_of(exc: KeyboardInterrupt) -> int:
    """The signal behind an interrupt: its own for :class:`Interrupted`, SIGINT for Python's plain Ctrl-C."""
    return exc.signum if isinstance(exc, Interrupted) else int(signal.SIGINT)


def signal_name(number: int) -> str:
    """``SIGTERM`` for 15; ``signal N`` for a number that names no signal."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """While the block runs, SIGINT and SIGTERM raise :class:`Interrupted` (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        if holding():
            hold(signum)
        else:
            raise Interrupted(signum)

    previous = {number: signal.signal(number, interrupt) for number in _SIGNALS}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


@contextlib.contextmanager
def shielded(on_signal: Callable[[int], None]) -> Iterator[None]:
    """While the block runs, SIGINT and SIGTERM call ``on_signal`` instead of interrupting (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def report(signum: int, frame: FrameType | None) -> None:
        if holding():
            hold(signum)
        else:
            on_signal(signum)

    previous = {number: signal.signal(number, report) for number in _SIGNALS}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
