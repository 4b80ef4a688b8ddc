"""The simulated runtime: deploys move through Render's phases on the emulator's clock, running nothing.

Each phase lasts a configured time. Progress is computed lazily on every read
from the clock, and every transition is recorded at the moment it happened
on that clock (not when someone looked), so a test with a fake clock drives a
60-second deploy without waiting and still sees the real timeline. Which
deploys fail comes from ``failures`` (commit -> phase) or the ``fail_deploy``
fault. A build writes Render's ``==>`` lines as ``build`` logs; a new
instance prints ``output[commit]`` as ``app`` logs when it starts (e.g. the
ImportError of a release that cannot start). ``ProcessRuntime``
(``process_runtime.py``) is the real one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from deploypipe.emulator.lifecycle import Lifecycle
from deploypipe.emulator.records import FAILED_STATUS, PHASE_STATUS, DeployRec, JobRec, ServiceRec

__all__ = ["PHASES", "SimulatedRuntime"]

PHASES = ("build", "pre_deploy", "update")


def _failure_reason(phase: str, deploy: DeployRec) -> dict[str, Any]:
    """deploy_ended's reason: a failed build names the build; a simulated instance or command exits with 1."""
    if phase == "build":
        return {"buildFailed": {"id": deploy.build_id}}
    return {"failure": {"evicted": False, "nonZeroExit": 1}}


@dataclass
class SimulatedRuntime:
    """Clock-driven phases (seconds each); ``failures`` maps a commit id to the phase at which its deploys fail.

    A rollback skips the build (it reuses the target's). ``job_s`` is how long a one-off job runs; ``job_exit``
    its exit status (0 succeeded, else failed). ``output`` maps a commit to the lines its new instance prints.
    ``service_build_s`` sets the build time of named services (others take ``build_s``).
    """

    build_s: float = 0.0
    pre_deploy_s: float = 0.0
    update_s: float = 0.0
    failures: dict[str, str] = field(default_factory=dict)
    job_s: float = 0.0
    job_exit: int = 0
    output: dict[str, list[str]] = field(default_factory=dict)  # commit -> lines its new instance prints
    service_build_s: dict[str, float] = field(default_factory=dict)  # service name -> its build's seconds

    def _phases(self, service: ServiceRec, deploy: DeployRec) -> list[tuple[str, float]]:
        build_s = self.service_build_s.get(service.name, self.build_s)
        phases = [] if deploy.trigger == "rollback" else [("build", build_s)]
        if service.spec.preDeployCommand:
            phases.append(("pre_deploy", self.pre_deploy_s))
        phases.append(("update", self.update_s))
        return phases

    def start(self, emulator: Lifecycle, service: ServiceRec, deploy: DeployRec) -> None:
        if deploy.trigger != "rollback" or not deploy.build_id:
            deploy.build_id = f"bld-{deploy.id[4:]}"
        self.advance(emulator, service)

    def advance(self, emulator: Lifecycle, service: ServiceRec) -> None:
        now = emulator.clock()
        for _ in range(len(service.deploys) + 1):  # finishing one may start the next queued deploy
            deploy = service.in_progress()
            if deploy is None or deploy.started_at is None:
                break
            if not self._advance_one(emulator, service, deploy, now):
                break
        for job in service.jobs:
            if job.status == "running" and job.started_at is not None and now >= job.started_at + self.job_s:
                emulator.job_status(service, job, "succeeded" if self.job_exit == 0 else "failed",
                                    at=job.started_at + self.job_s)

    def _advance_one(self, emulator: Lifecycle, service: ServiceRec, deploy: DeployRec, now: float) -> bool:
        """Move ``deploy`` as far as ``now`` allows; True if it finished (so a queued one may start)."""
        failing = deploy.fail_at or self.failures.get(deploy.commit_id or "")
        phases = self._phases(service, deploy)
        current = next((i for i, (p, _) in enumerate(phases) if PHASE_STATUS[p] == deploy.status), -1)
        at = deploy.started_at if deploy.started_at is not None else now
        for index, (phase, duration) in enumerate(phases):
            end = at + duration
            if index < current:  # passed on an earlier read
                at = end
                continue
            if index > current:
                emulator.phase_started(service, deploy, phase, at=at)
                self._started_output(emulator, service, deploy, phase, at)
            if now < end:
                return False
            if phase == "build":
                emulator.telemetry.log(service.id, "==> Build failed 😞" if failing == phase else
                                       "==> Build successful 🎉", type="build", at=end)
            if failing == phase:
                reason = _failure_reason(phase, deploy)
                emulator.phase_ended(service, deploy, phase, "failed", reason=reason, at=end)
                if phase == "update":
                    emulator.server_failed(service, reason, at=end)
                # a failed pre-deploy command is told by pre_deploy_ended; deploy_ended carries no instance failure
                emulator.finish(service, deploy, FAILED_STATUS[phase], reason={} if phase == "pre_deploy" else reason,
                                at=end)
                return True
            emulator.phase_ended(service, deploy, phase, "succeeded", at=end)
            at = end
        emulator.finish(service, deploy, "live", at=at)
        return True

    def _started_output(self, emulator: Lifecycle, service: ServiceRec, deploy: DeployRec, phase: str,
                        at: float) -> None:
        telemetry = emulator.telemetry
        if phase == "build":
            telemetry.log(service.id, f"==> Running build command '{service.spec.buildCommand}'...", type="build",
                          at=at)
        elif phase == "pre_deploy":
            telemetry.log(service.id, f"==> Running pre-deploy command '{service.spec.preDeployCommand}'...",
                          type="build", at=at)
        elif service.spec.type != "cron":  # a cron job's deploy starts nothing: its runs are cron.py's
            instance = f"{service.id}-{deploy.id[-5:]}"
            telemetry.log(service.id, f"==> Running '{service.spec.startCommand}'", type="build", at=at)
            for line in self.output.get(deploy.commit_id or "", []):
                telemetry.log(service.id, line, type="app", instance=instance, at=at)

    def cancel(self, emulator: Lifecycle, service: ServiceRec, deploy: DeployRec) -> None:
        return None

    def run_job(self, emulator: Lifecycle, service: ServiceRec, job: JobRec) -> None:
        """Runs for ``job_s`` (a simulated service has no build to require, unlike ``ProcessRuntime``)."""
        emulator.job_status(service, job, "running")
        self.advance(emulator, service)

    def cancel_job(self, emulator: Lifecycle, service: ServiceRec, job: JobRec) -> None:
        return None

    def restore(self, emulator: Lifecycle, service: ServiceRec) -> None:
        return None

    def close(self) -> None:
        return None
