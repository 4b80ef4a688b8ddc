"""The contract between the local Render's state and its runtimes: what a runtime does and what it reports.

``Runtime`` moves deploys through their phases (the simulated one in
``runtime.py``, real processes in ``process_runtime.py``). ``Lifecycle`` is
what a runtime reports to: ``state.Emulator`` implements it and keeps the
lifecycle rules (statuses, events, one deploy at a time). Both sit above the
records and below the state, so the state can choose a runtime without any
module importing the one that imports it.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

from deploypipe.emulator.records import DeployRec, JobRec, PostgresRec, ServiceRec
from deploypipe.emulator.telemetry import Telemetry

__all__ = ["Lifecycle", "Runtime"]


class Lifecycle(Protocol):
    """What runtimes report to (the Emulator). Each report takes an optional ``at`` timestamp so a lazily
    advanced simulation records when a phase really ended."""

    clock: Callable[[], float]
    postgres: dict[str, PostgresRec]
    services: dict[str, ServiceRec]  # by id: a service's env reads the others' (fromService)
    telemetry: Telemetry  # where instances' output, build output and requests are recorded

    def phase_started(self, service: ServiceRec, deploy: DeployRec, phase: str, *, at: float | None = None) -> None:
        """``deploy`` enters ``phase`` (build | pre_deploy | update)."""

    def phase_ended(self, service: ServiceRec, deploy: DeployRec, phase: str, outcome: str, *,
                    reason: dict[str, Any] | None = None, at: float | None = None) -> None:
        """A build or pre-deploy phase ended (``outcome``: succeeded | failed | canceled)."""

    def finish(self, service: ServiceRec, deploy: DeployRec, status: str, *, reason: dict[str, Any] | None = None,
               at: float | None = None) -> None:
        """The deploy reached a terminal status."""

    def server_failed(self, service: ServiceRec, reason: dict[str, Any], *, at: float | None = None,
                      instance: str | None = None) -> None:
        """An instance failed (a new one during its health checks, or the live one died)."""

    def job_status(self, service: ServiceRec, job: JobRec, status: str, *, at: float | None = None) -> None:
        """A one-off job moved to ``status``."""


class Runtime(Protocol):
    """Moves deploys through their phases: simulated (clock-driven) or real local processes.

    ``start`` begins a deploy the emulator has just started (status ``created``); ``advance`` brings a service's
    deploys and jobs up to the clock's now (the simulated runtime's work; a no-op for real processes, which
    report from their threads); ``cancel``/``cancel_job`` stop the work; ``run_job`` runs a one-off job against
    the live build; ``restore`` serves a saved live deploy again after a restart; ``close`` stops everything.
    """

    def start(self, emulator: Lifecycle, service: ServiceRec, deploy: DeployRec) -> None: ...

    def advance(self, emulator: Lifecycle, service: ServiceRec) -> None: ...

    def cancel(self, emulator: Lifecycle, service: ServiceRec, deploy: DeployRec) -> None: ...

    def run_job(self, emulator: Lifecycle, service: ServiceRec, job: JobRec) -> None: ...

    def cancel_job(self, emulator: Lifecycle, service: ServiceRec, job: JobRec) -> None: ...

    def restore(self, emulator: Lifecycle, service: ServiceRec) -> None: ...

    def close(self) -> None: ...
