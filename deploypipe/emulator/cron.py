"""Cron jobs on the local Render: runs triggered through the API or due on the schedule, recorded as Render does.

A run starts from the cron job's live deploy. On the real runtime (``ProcessRuntime``) its ``startCommand`` runs
with bash in the live build's directory with the service's environment, as a one-off job does; on any other
runtime it is simulated on the emulator's clock (``CronState``: ``sim_run_s``, ``sim_exit`` and ``sim_output`` by
commit). Each run records ``cron_job_run_started`` when it starts and ``cron_job_run_ended`` (``status`` successful
| unsuccessful | canceled; ``reason.nonZeroExit`` when it failed) when it ends. Its output lines, between
Render's ``==> Running '<command>'`` and, when it fails, ``==> Exited with status N``, are ``app`` logs of the cron
job with an instance id of the run's own.

Rules kept from Render: triggering a run cancels any active run (``POST /cron-jobs/{id}/runs``); a deploy starts
no run; ``lastSuccessfulRunAt`` is the end of the newest successful run. One run at a time: a scheduled minute that
comes while a run is active is skipped (the emulator's reading). A cron job that was never deployed has nothing to
run: its triggered run ends unsuccessful at once. ``advance`` starts the run the schedule (UTC, ``cronexpr``) makes
due and ends simulated runs; the API calls it on every request and ``CronTicker`` every second on the real runtime.
"""

from __future__ import annotations

import subprocess
import threading
from typing import Any

import structlog

from deploypipe.core.processes import stop_group
from deploypipe.emulator.cronexpr import CronSchedule
from deploypipe.emulator.ids import new_id
from deploypipe.emulator.process_runtime import ProcessRuntime
from deploypipe.emulator.proclogs import run_logged
from deploypipe.emulator.records import CronRunRec, ServiceRec
from deploypipe.emulator.state import Emulator

__all__ = ["CronTicker", "active_run", "advance", "cancel", "check_schedules", "trigger"]

log = structlog.get_logger("deploypipe.emulator")


def _runs(emu: Emulator, service: ServiceRec) -> list[CronRunRec]:
    return emu.cron.runs.setdefault(service.id, [])


def active_run(emu: Emulator, service: ServiceRec) -> CronRunRec | None:
    """The cron job's run still going (``pending``), if any."""
    return next((r for r in reversed(_runs(emu, service)) if r.status == "pending"), None)


def _log(emu: Emulator, service: ServiceRec, run: CronRunRec, line: str) -> None:
    emu.telemetry.log(service.id, line, type="app", instance=f"{service.id}-{run.id[-5:]}")


def _end(emu: Emulator, service: ServiceRec, run: CronRunRec, code: int, *, at: float | None = None) -> None:
    """A pending run ended with exit status ``code``: its status, Render's exit line, ``cron_job_run_ended``."""
    with emu.lock:
        if run.status != "pending":
            return
        run.finished_at, run.exit_code = emu.clock() if at is None else at, code
        run.status = "successful" if code == 0 else "unsuccessful"
        if code != 0:
            _log(emu, service, run, f"==> Exited with status {code}")
        reason = {} if code == 0 else {"reason": {"evicted": False, **({"nonZeroExit": code} if code > 0 else {})}}
        emu.event(service, "cron_job_run_ended", at=run.finished_at, cronJobRunId=run.id, status=run.status,
                  **reason)
        log.info("emulator_cron_run_ended", service=service.name, run_id=run.id, status=run.status, exit_code=code)
        emu.save()


def cancel(emu: Emulator, service: ServiceRec, *, by: str = "api") -> bool:
    """Cancel the active run (``canceled``, ``cron_job_run_ended``); False when none was active."""
    with emu.lock:
        run = active_run(emu, service)
        if run is None:
            return False
        run.status, run.canceled_by, run.finished_at = "canceled", by, emu.clock()
        emu.event(service, "cron_job_run_ended", at=run.finished_at, cronJobRunId=run.id, status="canceled")
        proc = emu.cron.processes.pop(run.id, None)
    stop_group(proc, grace_s=2.0)
    return True


def _start_process(emu: Emulator, runtime: ProcessRuntime, service: ServiceRec, run: CronRunRec,
                   build_id: str) -> None:
    """Run the start command in the live build's directory, in a thread that ends the run with its exit status."""
    log_path = runtime.data_dir / "logs" / f"{run.id}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)

    def started(proc: subprocess.Popen[Any]) -> None:
        with emu.lock:
            emu.cron.processes[run.id] = proc
            stale = run.status != "pending"  # cancelled before its process existed
        if stale:
            stop_group(proc, grace_s=2.0)

    def work() -> None:
        try:
            code = run_logged(service.spec.startCommand, cwd=runtime.build_dir(build_id, service),
                              env=runtime.env(emu, service, run.commit_id), log_path=log_path,
                              sink=lambda line: _log(emu, service, run, line), started=started)
        except Exception as exc:  # noqa: BLE001 -- the emulator must never leave a run pending forever
            _log(emu, service, run, f"==> local Render error: {type(exc).__name__}: {exc}")
            code = 1
        emu.cron.processes.pop(run.id, None)
        _end(emu, service, run, code)

    if not emu.cron.threads:
        emu.on_close.append(lambda: _stop_all(emu))
    thread = threading.Thread(target=work, name=f"cron-{run.id}", daemon=True)
    emu.cron.threads.append(thread)
    thread.start()


def _start(emu: Emulator, service: ServiceRec, *, by: str | None, at: float) -> CronRunRec:
    live = service.live()
    run = CronRunRec(id=new_id("run"), service_id=service.id, status="pending", started_at=at, triggered_by=by,
                     commit_id=live.commit_id if live else None)
    _runs(emu, service).append(run)
    emu.event(service, "cron_job_run_started", at=at, cronJobRunId=run.id)
    log.info("emulator_cron_run_started", service=service.name, run_id=run.id, triggered_by=by or "schedule")
    _log(emu, service, run, f"==> Running '{service.spec.startCommand}'")
    if live is None or not live.build_id:
        _log(emu, service, run, "==> No successful deploy to run: deploy the cron job first")
        _end(emu, service, run, 1, at=at)
    elif isinstance(emu.runtime, ProcessRuntime):
        _start_process(emu, emu.runtime, service, run, live.build_id)
    else:
        for line in emu.cron.sim_output.get(run.commit_id or "", []):
            _log(emu, service, run, line)
        _advance_simulated(emu, service, emu.clock())
    return run


def trigger(emu: Emulator, service: ServiceRec, *, by: str = "api") -> CronRunRec:
    """Start a run now, cancelling any active one first (Render's ``POST /cron-jobs/{id}/runs``)."""
    cancel(emu, service, by=by)
    with emu.lock:
        return _start(emu, service, by=by, at=emu.clock())


def _advance_simulated(emu: Emulator, service: ServiceRec, now: float) -> None:
    run = active_run(emu, service)
    if run is not None and not isinstance(emu.runtime, ProcessRuntime) and now >= run.started_at + emu.cron.sim_run_s:
        _end(emu, service, run, emu.cron.sim_exit.get(run.commit_id or "", 0), at=run.started_at + emu.cron.sim_run_s)


def _schedule(service: ServiceRec) -> CronSchedule | None:
    try:
        return CronSchedule.parse(service.spec.schedule) if service.spec.schedule else None
    except ValueError:  # refused when the Blueprint loads (check_schedules); a hand-made service just never runs
        return None


def advance(emu: Emulator) -> None:
    """Bring cron jobs up to the clock's now: end simulated runs whose time is up, start the run that is due."""
    with emu.lock:
        now = emu.clock()
        for service in [s for s in emu.services.values() if s.spec.type == "cron"]:
            _advance_simulated(emu, service, now)
            schedule = _schedule(service)
            if schedule is None or service.live() is None:
                continue
            due = emu.cron.next_due.get(service.id)
            if due is None or now >= due:
                following = schedule.next_after(now)
                if following is None:
                    emu.cron.next_due.pop(service.id, None)
                else:
                    emu.cron.next_due[service.id] = following
            if due is not None and now >= due and active_run(emu, service) is None:
                _start(emu, service, by=None, at=now if isinstance(emu.runtime, ProcessRuntime) else due)


def check_schedules(emu: Emulator) -> list[str]:
    """One problem per cron job whose ``schedule`` is missing or is not a cron expression."""
    problems = []
    for service in (s for s in emu.services.values() if s.spec.type == "cron"):
        if not service.spec.schedule:
            problems.append(f"service {service.name}: a cron job needs a schedule (e.g. '0 3 * * *')")
            continue
        try:
            CronSchedule.parse(service.spec.schedule)
        except ValueError as exc:
            problems.append(f"service {service.name}: schedule {service.spec.schedule!r}: {exc}")
    return problems


def _stop_all(emu: Emulator) -> None:
    for proc in list(emu.cron.processes.values()):
        stop_group(proc, grace_s=2.0)
    for thread in emu.cron.threads:
        thread.join(10)


class CronTicker:
    """Calls ``advance`` every ``interval_s`` seconds in a thread, so schedules run without API requests."""

    def __init__(self, emulator: Emulator, interval_s: float = 1.0):
        self.emulator, self.interval_s = emulator, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="cron-ticker", daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            advance(self.emulator)

    def start(self) -> CronTicker:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
