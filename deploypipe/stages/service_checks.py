"""Verify one released service by its kind: a web service over HTTP, the others from Render's own data.

- ``web``: its health path answers 2xx ``successes`` times in a row (within ``healthy_within_s``), then, for the
  observation window, no instance crashes and the health path keeps answering (``failure_threshold`` failures in
  a row fail it).
- ``private``, ``worker``: no ``server_failed`` or ``server_restarted`` event and no app log line matching
  ``error_pattern`` (access-log lines never count) during the observation window after it went live.
- ``cron``: the same, and its last run in the window (``cron_job_run_ended``) did not fail.

The same check runs after a rollback, from the moment the rolled-back release went live, so a rolled-back worker
is verified, not assumed. A failure names the service and the app's own error line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable

from deploypipe.core.polling import poll
from deploypipe.core.probe import Probe, probe
from deploypipe.errors import StageFailed
from deploypipe.render.instances import Instances, describe_crash, look
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


def _problem(service: Released, seen: Instances) -> str | None:
    if seen.crashes:
        return _crash_line(service, seen)
    if seen.errors:
        return (f"{service.key}: error in the app log since it went live at {service.since:%H:%M:%S}: "
                f"{headline(list(seen.errors))}")
    if seen.cron_status not in (None, "successful", "succeeded"):
        return f"{service.key}: its last cron run ended {seen.cron_status}"
    return None


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


def verify_service(ctx: StageContext, service: Released, spec: CheckSpec, *, phase: str = "verify",
                   stopped: Callable[[], bool] = lambda: False) -> str:
    """Verify ``service`` by its kind; its summary (``STOPPED`` when ``stopped()`` ended the watch early), or
    StageFailed naming the problem."""
    url = _healthy(ctx, service, spec) if service.kind == "web" and service.url else ""
    pattern = re.compile(spec.error_pattern)
    failures = [0]
    waited = [False]

    def trouble() -> str | None:
        if stopped():
            return STOPPED
        now = ctx.now()
        seen = look(ctx.resources.render, service_id=service.service_id, owner_id=service.owner_id,
                    since=service.since, until=now + timedelta(seconds=1), pattern=pattern,
                    cron=service.kind == "cron")
        if service.kind == "web":
            seen = Instances(crashes=seen.crashes, errors=(), cron_status=None)
            if url:
                result = probe(ctx.resources.http, Probe(url=url, timeout_s=5.0))
                failures[0] = 0 if result.ok else failures[0] + 1
                if failures[0] >= spec.failure_threshold:
                    return f"{service.key}: {url} failed {failures[0]} checks in a row: {result.reason}"
        problem = _problem(service, seen)
        if (problem and not seen.crashes and headline(list(seen.errors)).startswith("Traceback") and not waited[0]
                and ctx.clock() + spec.interval_s <= deadline):
            waited[0], problem = True, None  # a traceback still being written: its last line comes with the next look
        ctx.emit("service_watched", service=service.key, kind=service.kind, phase=phase,
                 crashes=len(seen.crashes), errors=len(seen.errors), problem=problem)
        return problem

    deadline = ctx.clock() + spec.observe_s
    problem = poll(trouble, timeout_s=spec.observe_s, interval_s=spec.interval_s, clock=ctx.clock, sleep=ctx.sleep,
                   wait_first=spec.observe_s > 0)
    if problem == STOPPED:
        return f"{service.key}: {STOPPED}"
    if problem is not None:
        raise StageFailed(problem, where=ctx.where)
    if service.kind == "web":
        return f"{service.key}: healthy, no instance failure for {spec.observe_s:g}s"
    return f"{service.key}: no instance failure or error line for {spec.observe_s:g}s"
