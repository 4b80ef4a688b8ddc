"""Critical sections a signal must not split: a signal that comes during one is held and delivered as it ends.

A Python signal handler runs between two bytecodes of the main thread, so an
exception it raises can land right after a lock was taken and before the
``try`` that would release it (``subprocess.Popen.poll`` and ``wait(timeout)``
take their lock so), or between a child's fork and the ``try`` that would stop
it. The command line's handlers (:mod:`deploypipe.engine.signals`) ask
:func:`holding` first and, inside :func:`critical`, :func:`hold` the signal
instead; when the outermost section ends the held signals are raised again
(``signal.raise_signal``), so whatever handler is installed then runs at a safe
point. Main thread only: elsewhere :func:`critical` does nothing.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

__all__ = ["critical", "hold", "holding"]

_depth = 0
_held: list[int] = []


def holding() -> bool:
    """True while the main thread is inside :func:`critical` (a handler should :func:`hold` its signal)."""
    return _depth > 0 and threading.current_thread() is threading.main_thread()


def hold(signum: int) -> None:
    """Keep ``signum`` until the critical section ends (each distinct signal once, in arrival order)."""
    if signum not in _held:
        _held.append(signum)


@contextlib.contextmanager
def critical() -> Iterator[None]:
    """While the block runs, a handler that asks :func:`holding` defers its signal to the block's end."""
    global _depth
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0:
            held = list(_held)
            _held.clear()
            for signum in held:  # a handler that raises ends the loop: the signals after it are dropped
                signal.raise_signal(signum)
