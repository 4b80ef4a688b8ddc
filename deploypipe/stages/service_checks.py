"""Verify one released service by its kind: a web service over HTTP, the others from Render's own data.

- ``web``: its health path answers 2xx ``successes`` times in a row (within ``healthy_within_s``), then, for the
  observation window, no instance crashes and the health path keeps answering (``failure_threshold`` failures in
  a row fail it).
- ``private``, ``worker``: no ``server_failed`` or ``server_restarted`` event and no app log line matching
  ``error_pattern`` (access-log lines never count) during the observation window after it went live.
- ``cron``: the same, and its last run in the window (``cron_job_run_ended``) did not end unsuccessful. A cron job
  named in ``run_cron`` gets one run triggered once it is live (at most once: ``RenderClient.trigger_cron_run``),
  and the watch lasts until that run has ended too (at most ``cron_run_timeout_s``): it must end successful. When
  no run ended in the window and none was asked for, the summary says so.

The same check runs after a rollback, from the moment the rolled-back release went live, so a rolled-back worker
is verified, not assumed (and a cron job in ``run_cron`` runs once more). A failure names the service and the app's
own error line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable

from deploypipe.core.polling import poll
from deploypipe.core.probe import Probe, probe
from deploypipe.errors import StageFailed
from deploypipe.render.instances import Instances, describe_crash, describe_run, error_lines, look
from deploypipe.render.models import CronJobRun
from deploypipe.stages.context import StageContext
from deploypipe.stages.diagnostics import headline

__all__ = ["KIND_OF_TYPE", "STOPPED", "CheckSpec", "Released", "verify_service"]

#: Render's service ``type`` -> the pipeline's ``kind``
KIND_OF_TYPE = {"web_service": "web", "private_service": "private", "background_worker": "worker",
                "cron_job": "cron", "static_site": "web"}


@dataclass(frozen=True)
class CheckSpec:
    """How long and how a released service is watched (``render.release``'s parameters)."""

    observe_s: float
    interval_s: float
    successes: int
    healthy_within_s: float
    failure_threshold: int
    error_pattern: str
    run_cron: frozenset[str] = frozenset()  # cron job keys that get one run triggered once live
    cron_run_timeout_s: float = 600.0  # how long such a run may take to end


@dataclass(frozen=True)
class Released:
    """A service release to verify: which service, its kind, where it answers, and since when it is live."""

    key: str
    kind: str
    service_id: str
    owner_id: str
    since: datetime
    url: str | None = None
    health_path: str = "/health"


def _crash_line(service: Released, seen: Instances) -> str:
    crashes = seen.crashes
    what = (f"{service.key}: {len(crashes)} instance failure{'s' if len(crashes) != 1 else ''} since it went live "
            f"at {service.since:%H:%M:%S} ({describe_crash(crashes[-1])})")
    return what + (f"; app log: {headline(list(seen.errors))}" if seen.errors else "")


def _run_line(ctx: StageContext, service: Released, seen: Instances) -> str:
    """The failed run's error line: the last error line in the window, else the last line in the app's own words."""
    lines = list(seen.errors) or [line for line in error_lines(
        ctx.resources.render, service_id=service.service_id, owner_id=service.owner_id, since=service.since,
        until=ctx.now() + timedelta(seconds=1), pattern=re.compile(r"\S")) if not line.startswith("==>")]
    return f"; app log: {headline(lines)}" if lines else ""


def _problem(ctx: StageContext, service: Released, seen: Instances, run: CronJobRun | None) -> str | None:
    if seen.crashes:
        return _crash_line(service, seen)
    ended = seen.run(run.id) if run is not None else (seen.runs[0] if seen.runs else None)
    failed = ended is not None and ended.details.get("status") not in (
        ("successful",) if run is not None else ("successful", "canceled"))
    if ended is not None and failed:
        which = "its run triggered after it went live" if run is not None else "its last run in the window"
        return f"{service.key}: {which}, {describe_run(ended)}{_run_line(ctx, service, seen)}"
    if run is not None and ended is None:
        return None  # its error lines are judged with the run's outcome, once it ends (or does not in time)
    if seen.errors:
        return (f"{service.key}: error in the app log since it went live at {service.since:%H:%M:%S}: "
                f"{headline(list(seen.errors))}")
    return None


def _trigger_run(ctx: StageContext, service: Released, phase: str) -> CronJobRun:
    """One run of the cron job, started once it is live (the run a killed watch already started, on resume)."""
    since = service.since.isoformat()
    triggered = ctx.prior("cron_run_triggered", service=service.key, phase=phase, since=since)
    if triggered is not None:
        return CronJobRun(id=str(triggered["run_id"]), status="pending")
    asked = ctx.prior("cron_run_requested", service=service.key, phase=phase, since=since)
    client = ctx.resources.render
    if asked is None:  # journalled before the POST: a resumed run looks for the run before asking again
        ctx.emit("cron_run_requested", service=service.key, phase=phase, since=since, requested_at=client.wall_clock())
    run = client.trigger_cron_run(service.service_id, not_before=service.since,
                                  requested_at=float(asked["requested_at"]) if asked is not None else None)
    ctx.emit("cron_run_triggered", service=service.key, phase=phase, since=since, run_id=run.id)
    return run


def _cron_summary(service: Released, spec: CheckSpec, run: CronJobRun | None, seen: Instances | None) -> str:
    quiet = f"no instance failure or error line for {spec.observe_s:g}s"
    ended = (seen.run(run.id) if run is not None else seen.runs[0] if seen.runs else None) if seen else None
    if run is not None and ended is not None:
        return f"{service.key}: its run triggered after it went live, {describe_run(ended)}; {quiet}"
    if ended is not None:
        return f"{service.key}: its last run in the window, {describe_run(ended)}; {quiet}"
    return (f"{service.key}: no run ended in its {spec.observe_s:g}s window and none was asked for (run_cron "
            f"triggers one once it is live), so no run was judged; {quiet}")


def _healthy(ctx: StageContext, service: Released, spec: CheckSpec) -> str:
    target = Probe(url=(service.url or "").rstrip("/") + service.health_path, timeout_s=5.0)
    streak: list[int] = [0]
    last: list[str] = [""]

    def ready() -> bool | None:
        result = probe(ctx.resources.http, target)
        streak[0], last[0] = (streak[0] + 1 if result.ok else 0), result.reason
        return True if streak[0] >= spec.successes else None

    if poll(ready, timeout_s=spec.healthy_within_s, interval_s=spec.interval_s, clock=ctx.clock,
            sleep=ctx.sleep) is None:
        raise StageFailed(f"{service.key}: {target.url} not healthy {spec.successes} times in a row within "
                          f"{spec.healthy_within_s:g}s: {last[0]}", where=ctx.where)
    return target.url


STOPPED = "watch stopped early: another service of the release failed"
_DONE = "the triggered run ended and the window passed"


def verify_service(ctx: StageContext, service: Released, spec: CheckSpec, *, phase: str = "verify",
                   stopped: Callable[[], bool] = lambda: False) -> str:
    """Verify ``service`` by its kind; its summary (``STOPPED`` when ``stopped()`` ended the watch early), or
    StageFailed naming the problem."""
    url = _healthy(ctx, service, spec) if service.kind == "web" and service.url else ""
    pattern = re.compile(spec.error_pattern)
    failures = [0]
    waited = [False]
    run = _trigger_run(ctx, service, phase) if service.kind == "cron" and service.key in spec.run_cron else None
    last: list[Instances] = []
    window_end = ctx.clock() + spec.observe_s
    deadline = window_end if run is None else ctx.clock() + max(spec.observe_s, spec.cron_run_timeout_s)

    def trouble() -> str | None:
        if stopped():
            return STOPPED
        now = ctx.now()
        seen = look(ctx.resources.render, service_id=service.service_id, owner_id=service.owner_id,
                    since=service.since, until=now + timedelta(seconds=1), pattern=pattern,
                    cron=service.kind == "cron")
        if service.kind == "web":
            seen = Instances(crashes=seen.crashes, errors=())
            if url:
                result = probe(ctx.resources.http, Probe(url=url, timeout_s=5.0))
                failures[0] = 0 if result.ok else failures[0] + 1
                if failures[0] >= spec.failure_threshold:
                    return f"{service.key}: {url} failed {failures[0]} checks in a row: {result.reason}"
        last[:] = [seen]
        problem = _problem(ctx, service, seen, run)
        if (problem and not seen.crashes and headline(list(seen.errors)).startswith("Traceback") and not waited[0]
                and ctx.clock() + spec.interval_s <= deadline):
            waited[0], problem = True, None  # a traceback still being written: its last line comes with the next look
        if problem is None and run is not None and seen.run(run.id) is None and ctx.clock() >= deadline:
            problem = (f"{service.key}: its run {run.id}, triggered after it went live, did not end within "
                       f"{spec.cron_run_timeout_s:g}s{_run_line(ctx, service, seen)}")
        ctx.emit("service_watched", service=service.key, kind=service.kind, phase=phase,
                 crashes=len(seen.crashes), errors=len(seen.errors), problem=problem)
        if problem is None and run is not None and seen.run(run.id) is not None and ctx.clock() >= window_end:
            return _DONE
        return problem

    problem = poll(trouble, timeout_s=deadline - ctx.clock(), interval_s=spec.interval_s, clock=ctx.clock,
                   sleep=ctx.sleep, wait_first=spec.observe_s > 0)
    if problem == STOPPED:
        return f"{service.key}: {STOPPED}"
    if problem is not None and problem != _DONE:
        raise StageFailed(problem, where=ctx.where)
    if service.kind == "web":
        return f"{service.key}: healthy, no instance failure for {spec.observe_s:g}s"
    if service.kind == "cron":
        return _cron_summary(service, spec, run, last[0] if last else None)
    return f"{service.key}: no instance failure or error line for {spec.observe_s:g}s"
