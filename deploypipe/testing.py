"""Test helpers shipped with the package (like structlog.testing): a fake clock for injected sleep/clock seams.

The local Render (``deploypipe.emulator``: ``build_emulator``, ``in_process_client``, ``EmulatorServer``) is the
other half of deploypipe's test kit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["FakeClock"]


@dataclass
class FakeClock:
    """Seconds that only move when someone sleeps: every wait is recorded, none is real.

    Pass ``clock`` (or ``time``) where a clock is injected and the instance itself (or ``sleep``) where a sleep is.
    """

    now: float = 1000.0
    waits: list[float] = field(default_factory=list)

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0, f"negative sleep {seconds}"
        self.waits.append(seconds)
        self.now += seconds

    __call__ = sleep

    def time(self) -> float:
        return self.now

    clock = time
