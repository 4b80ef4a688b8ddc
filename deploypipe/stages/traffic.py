"""``verify.traffic``: judge a live release on its real traffic against the previous release, from Render's data.

Render has no traffic split, so the "canary" is the new release from the
moment it went live and the baseline is the previous release before it, on
the same service. The judgement is :mod:`deploypipe.analysis` (sequential
tests valid at every look, per path and for the whole service, on errors and
on each request's response time, a minimum request count); this stage reads
Render's ``/v1/metrics/http-requests``, ``/v1/metrics/http-latency`` and
``/v1/logs`` for it (the response time is ``responseTimeMS=<n>`` in a request
log line's text), at most one metrics request per interval and
``logs_requests_per_min`` log pages a minute. It journals ``traffic_baseline``
once and ``traffic_look`` at every look. A failed verdict names the worst path
("POST /notes: 41 of 43 answered 500 since 12:03:07 (baseline 0 of 380)") and
the runner rolls back as for any failed check; too little traffic is
"inconclusive: N requests", handled by ``on_inconclusive``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import ClassVar, Sequence

from pydantic import Field

from deploypipe.analysis import (
    CountBucket,
    LatencyBucket,
    LogPage,
    RequestLogEntry,
    TrafficConfig,
    Verdict,
    Window,
    observe,
)
from deploypipe.errors import StageErrored, StageFailed, TransientError
from deploypipe.render.client import RenderClient
from deploypipe.render.retry import RetryPolicy
from deploypipe.stages.base import Outputs as BaseOutputs
from deploypipe.stages.base import Params as BaseParams
from deploypipe.stages.base import ServiceRelease, StageResult
from deploypipe.stages.context import StageContext
from deploypipe.stages.diagnostics import explain_release

__all__ = ["RenderTrafficSource", "VerifyTraffic", "response_ms"]


_RESPONSE_TIME = re.compile(r"\bresponseTimeMS=(\d+(?:\.\d+)?)")


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def response_ms(message: str) -> float | None:
    """``... responseTimeMS=612`` -> 612.0; None when the request log line has no response time."""
    found = _RESPONSE_TIME.search(message)
    return float(found.group(1)) if found else None


class RenderTrafficSource:
    """The analysis' TrafficSource on Render's API: exactly one HTTP request per call (the analysis retries)."""

    def __init__(self, client: RenderClient, service_id: str, owner_id: str):
        self.client = client.with_retry(RetryPolicy(attempts=1))
        self.service_id = service_id
        self.owner_id = owner_id

    def request_counts(self, window: Window, resolution_s: int) -> Sequence[CountBucket]:
        series = self.client.http_request_metrics(self.service_id, start=_at(window.start), end=_at(window.end),
                                                  resolution_s=resolution_s, aggregate_by="statusCode")
        totals: dict[float, list[int]] = {}
        for one in series:
            failing = one.labels.get("statusCode", "").startswith("5")
            for when, value in one.points:
                bucket = totals.setdefault(when.timestamp(), [0, 0])
                bucket[0] += int(value)
                bucket[1] += int(value) if failing else 0
        return [CountBucket(start=start, requests=n, errors=e) for start, (n, e) in sorted(totals.items())]

    def latency(self, window: Window, resolution_s: int, quantile: float) -> Sequence[LatencyBucket]:
        series = self.client.http_latency_metrics(self.service_id, start=_at(window.start), end=_at(window.end),
                                                  resolution_s=resolution_s, quantile=quantile)
        return [LatencyBucket(start=when.timestamp(), ms=value) for one in series for when, value in one.points]

    def request_logs(self, window: Window, limit: int) -> LogPage:
        page = self.client.list_logs(self.owner_id, resources=self.service_id, start=_at(window.start),
                                     end=_at(window.end), types=["request"], direction="backward", limit=limit)
        entries = tuple(RequestLogEntry(at=entry.timestamp.timestamp(), method=entry.labels.get("method", "?"),
                                        path=entry.labels.get("path", "?"), status=entry.status_code or 0,
                                        ms=response_ms(entry.message))
                        for entry in page.logs if entry.status_code is not None)
        rest = Window(page.next_start_time.timestamp(), max(page.next_start_time.timestamp(),
                                                            page.next_end_time.timestamp()))
        return LogPage(entries=entries, has_more=page.has_more, next=rest if page.has_more else None)


def _previous_live_at(client: RenderClient, release: ServiceRelease) -> float | None:
    """When the release before this one went live (its deploy's ``finishedAt``): the baseline starts no earlier."""
    if release.previous_deploy_id is None:
        return None
    try:
        finished = client.get_deploy(release.service_id, release.previous_deploy_id).finished_at
    except TransientError:
        return None
    return finished.timestamp() if finished is not None else None


class VerifyTraffic:
    """Judge the release on its traffic; a failure rolls back, too little traffic is inconclusive."""

    type: ClassVar[str] = "verify.traffic"
    description: ClassVar[str] = (
        "Judge a live release on Render's request metrics and logs against the previous release, per path and "
        "for the service, at every look: what it made worse in errors and response times; name the worst path; "
        "inconclusive with too little traffic.")
    touches_production: ClassVar[bool] = False

    class Params(BaseParams, TrafficConfig):
        service: str = Field(..., description="Service target key (the release made live earlier in this run).")

    class Outputs(BaseOutputs):
        service: str
        verdict: Verdict

    def plan(self, params: VerifyTraffic.Params) -> str:
        return (f"observe {params.service}'s traffic for {params.window_s:g}s after the switch against the previous "
                f"release: success rate >= {params.min_success_rate:.2%}, p{params.latency_quantile * 100:g} <= "
                f"{params.max_latency_ms:g} ms, >= {params.min_requests} requests (else {params.on_inconclusive})")

    def run(self, ctx: StageContext, params: VerifyTraffic.Params) -> StageResult[VerifyTraffic.Outputs]:
        release = ctx.latest(ServiceRelease, where=lambda o: o.service == params.service)
        if release is None or release.live_at is None:
            raise StageErrored(f"no release of {params.service} went live earlier in this run", where=ctx.where,
                               hint="put verify.traffic after the render.deploy (or render.rollback) of the service")
        client = ctx.resources.render
        owner_id = client.get_service(release.service_id).owner_id
        config = TrafficConfig.model_validate(params.model_dump(exclude={"service"}))
        verdict = observe(RenderTrafficSource(client, release.service_id, owner_id), config,
                          switched_at=release.live_at.timestamp(), clock=lambda: ctx.now().timestamp(),
                          previous_live_at=_previous_live_at(client, release),
                          first_release=release.previous_deploy_id is None,
                          sleep=ctx.sleep, on_look=lambda figures: ctx.emit("traffic_look", **figures),
                          on_baseline=lambda figures: ctx.emit("traffic_baseline", **figures))
        ctx.emit("traffic_verdict", **verdict.model_dump(mode="json"))
        outputs = self.Outputs(service=params.service, verdict=verdict)
        if verdict.outcome == "fail":
            line = explain_release(ctx, release)
            raise StageFailed(verdict.message + (f"; app log: {line}" if line else ""), where=ctx.where,
                              outputs=outputs, hint="; ".join(verdict.reasons[1:3]) or None)
        warnings = (verdict.message,) if verdict.outcome == "warn" else ()
        caveat = verdict.message if verdict.status == "inconclusive" and verdict.outcome != "pass" else ""
        return StageResult(outputs=outputs, warnings=warnings, summary=verdict.message, caveat=caveat)
