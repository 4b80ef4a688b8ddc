"""Runtimes that move deploys through Render's phases.

``SimulatedRuntime`` runs nothing: each phase lasts a configured time measured
on the emulator's clock, computed lazily on every read, so a test with a fake
clock drives a 60-second deploy without waiting. ``ProcessRuntime`` (in
``process_runtime.py``) builds and starts real processes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from deploypipe.emulator.state import FAILED_STATUS

if TYPE_CHECKING:  # pragma: no cover
    from deploypipe.emulator.state import DeployRec, Emulator, JobRec, ServiceRec

__all__ = ["PHASES", "SimulatedRuntime"]

PHASES = ("build", "pre_deploy", "update")
_IN = {"build": "build_in_progress", "pre_deploy": "pre_deploy_in_progress", "update": "update_in_progress"}


@dataclass
class SimulatedRuntime:
    """Clock-driven phases; ``failures`` maps a commit id to the phase at which its deploys fail."""

    build_s: float = 0.0
    pre_deploy_s: float = 0.0
    update_s: float = 0.0
    failures: dict[str, str] = field(default_factory=dict)
    job_exit: int = 0

    def _phases(self, service: "ServiceRec", deploy: "DeployRec") -> list[tuple[str, float]]:
        phases = [] if deploy.trigger == "rollback" else [("build", self.build_s)]
        if service.spec.preDeployCommand:
            phases.append(("pre_deploy", self.pre_deploy_s))
        phases.append(("update", self.update_s))
        return phases

    def start(self, emulator: "Emulator", service: "ServiceRec", deploy: "DeployRec") -> None:
        if deploy.trigger != "rollback":
            deploy.build_id = f"bld-{deploy.id[4:]}"
        self.advance(emulator, service)

    def advance(self, emulator: "Emulator", service: "ServiceRec") -> None:
        for _ in range(len(service.deploys) + 1):  # finishing one may start the next queued deploy
            deploy = service.in_progress()
            if deploy is None or deploy.started_at is None:
                return
            elapsed = emulator.clock() - deploy.started_at
            failing = deploy.fail_at or self.failures.get(deploy.commit_id or "")
            for phase, duration in self._phases(service, deploy):
                if elapsed < duration:
                    emulator.set_status(service, deploy, _IN[phase])
                    return
                elapsed -= duration
                if failing == phase:
                    reason = {"buildFailed": {"id": deploy.build_id}} if phase == "build" else (
                        {"failure": {"evicted": False, "nonZeroExit": 1}} if phase == "update" else {})
                    if phase == "pre_deploy":
                        emulator.event(service, "pre_deploy_ended", deployCommandExecutionId=deploy.id,
                                       deployId=deploy.id, preDeployStatus="failed", reason={})
                    emulator.finish(service, deploy, FAILED_STATUS[phase], reason=reason)
                    break
            else:
                emulator.finish(service, deploy, "live")

    def cancel(self, emulator: "Emulator", service: "ServiceRec", deploy: "DeployRec") -> None:
        return None

    def run_job(self, emulator: "Emulator", service: "ServiceRec", job: "JobRec") -> None:
        job.started_at = job.finished_at = emulator.clock()
        job.status = "succeeded" if self.job_exit == 0 else "failed"

    def restore(self, emulator: "Emulator", service: "ServiceRec") -> None:
        return None

    def close(self) -> None:
        return None
