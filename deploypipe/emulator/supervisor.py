"""Render's answer to a crashed live instance: a ``server_failed`` event, then a restart after a growing backoff.

``supervise`` runs in a thread per live instance (``ProcessRuntime``): while the instance is still the service's
live one, each exit is recorded (exit status, or an early exit) and the same deploy's build is started again after
the runtime's ``restart_backoff_s``, doubling per crash up to ``MAX_BACKOFF_S``. A newer live deploy, or the
runtime closing, ends the watch.
"""

from __future__ import annotations

import subprocess
import threading
from dataclasses import dataclass
from typing import Any, Mapping, Protocol

import structlog

from deploypipe.emulator.lifecycle import Lifecycle
from deploypipe.emulator.records import DeployRec, ServiceRec

__all__ = ["MAX_BACKOFF_S", "Instance", "Restartable", "supervise"]

log = structlog.get_logger("deploypipe.emulator")


MAX_BACKOFF_S = 30.0


@dataclass
class Instance:
    """A running instance: Render's instance id (the service id and five characters), its deploy, port, process."""

    id: str
    deploy_id: str
    port: int
    proc: subprocess.Popen[Any]


class Restartable(Protocol):
    """What ``supervise`` needs of a runtime."""

    closed: threading.Event
    restart_backoff_s: float

    @property
    def instances(self) -> Mapping[str, Instance]: ...

    def restart(self, emulator: Lifecycle, service: ServiceRec, deploy: DeployRec, old: Instance) -> Instance: ...


def supervise(runtime: Restartable, emulator: Lifecycle, service: ServiceRec, instance: Instance) -> None:
    """While ``instance`` is the live one: on each exit record ``server_failed``, back off, start it again."""
    crashes = 0
    while True:
        code = instance.proc.wait()
        if runtime.instances.get(service.name) is not instance or runtime.closed.is_set():
            return
        crashes += 1
        log.warning("emulator_instance_died", service=service.name, deploy_id=instance.deploy_id, exit_code=code,
                    crashes=crashes)
        emulator.server_failed(service, {"failure": {"evicted": False, **(
            {"nonZeroExit": code} if code > 0 else {"earlyExit": True})}}, instance=instance.id)
        if runtime.closed.wait(min(MAX_BACKOFF_S, runtime.restart_backoff_s * 2 ** (crashes - 1))):
            return
        deploy = next((d for d in service.deploys if d.id == instance.deploy_id), None)
        if deploy is None or runtime.instances.get(service.name) is not instance:
            return
        instance = runtime.restart(emulator, service, deploy, instance)
