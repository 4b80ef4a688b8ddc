"""``http.check`` and ``verify.health``: prove a release is healthy, then keep watching it.

``verify.health`` polls until N consecutive successes (status, time budget,
JSON assertions, and the deployed commit, so a stale instance cannot pass);
smoke requests run from the first probe that sees the deployed commit, and a
5xx from that commit fails at once (``stages/smoke.py``). Once healthy, every
smoke request must pass; then it observes for a window and fails when health
degrades (``failure_threshold`` consecutive failures), and sends the smoke
requests again. A failure makes the runner roll back; after a rollback the
runner calls ``verify_after_rollback`` to prove the restored release serves
again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Literal, Mapping

from pydantic import Field

from deploypipe.core.polling import poll
from deploypipe.core.probe import Probe, ProbeResult, probe
from deploypipe.errors import StageErrored, StageFailed
from deploypipe.stages.base import Compensation, Restored, ServiceRelease, StageResult
from deploypipe.stages.base import Outputs as BaseOutputs
from deploypipe.stages.base import Params as BaseParams
from deploypipe.stages.context import StageContext
from deploypipe.stages.diagnostics import explain_release
from deploypipe.stages.render_preflight import RenderPreflight
from deploypipe.stages.smoke import EarlySmoke, SmokeRequest, check_all, smoke_probe

__all__ = ["HttpCheck", "SmokeRequest", "VerifyHealth"]


@dataclass
class _Streak:
    """Consecutive probe results while waiting for a release to become healthy."""

    successes: int = 0
    failures: int = 0
    sent: int = 0
    last: ProbeResult = ProbeResult(False, "not probed yet")


def _probe_once(ctx: StageContext, spec: Probe, phase: str = "verify") -> ProbeResult:
    """One probe, journalled (``health_probe``) so the report can chart health over the run."""
    result = probe(ctx.resources.http, spec)
    ctx.emit("health_probe", url=spec.url, phase=phase, ok=result.ok, status=result.status,
             elapsed_ms=round(result.elapsed_ms, 1), reason=result.reason, commit=result.commit)
    return result


def _wait_until_healthy(ctx: StageContext, spec: Probe, successes: int, interval_s: float, timeout_s: float,
                        failure_threshold: int | None = None, phase: str = "verify",
                        after_probe: Callable[[ProbeResult], None] | None = None) -> tuple[int, ProbeResult]:
    """Poll until ``successes`` consecutive good probes; return (probes sent, last result) or raise StageFailed.

    With ``failure_threshold``, that many consecutive failures fail at once: the release is already live (Render
    health-gated it), so failing probes mean it is broken, not still starting. ``after_probe`` sees every result
    and may raise.
    """
    streak = _Streak()

    def healthy() -> bool | None:
        streak.last = _probe_once(ctx, spec, phase)
        streak.sent += 1
        if streak.last.ok:
            streak.successes, streak.failures = streak.successes + 1, 0
        else:
            streak.successes, streak.failures = 0, streak.failures + 1
            ctx.emit("health_check_failed", url=spec.url, reason=streak.last.reason,
                     consecutive_failures=streak.failures)
        if after_probe is not None:
            after_probe(streak.last)
        if streak.successes >= successes:
            return True
        if failure_threshold is not None and streak.failures >= failure_threshold:
            return False
        return None

    verdict = poll(healthy, timeout_s=timeout_s, interval_s=interval_s, clock=ctx.clock, sleep=ctx.sleep)
    if verdict is None:
        raise StageFailed(f"{spec.url} not healthy after {timeout_s:g}s ({streak.sent} probes): {streak.last.reason}",
                          where=ctx.where)
    if not verdict:
        raise StageFailed(f"{spec.url} failed {streak.failures} consecutive health checks: {streak.last.reason}",
                          where=ctx.where)
    return streak.sent, streak.last


class HttpCheck:
    """Poll one URL until it answers as expected."""

    type: ClassVar[str] = "http.check"
    description: ClassVar[str] = "Poll a URL until it returns the expected status/JSON (N consecutive successes)."
    touches_production: ClassVar[bool] = False

    class Params(BaseParams):
        url: str = Field(..., description="Absolute URL to request.")
        method: Literal["GET", "POST", "HEAD"] = "GET"
        expect_status: list[int] = Field(default_factory=lambda: [200], description="Accepted status codes.")
        expect_json: dict[str, Any] = Field(default_factory=dict, description="dotted.path: expected value.")
        budget_ms: float | None = Field(None, gt=0, description="Slowest acceptable response time.")
        successes: int = Field(1, ge=1, description="Consecutive successes required.")
        interval_s: float = Field(2.0, gt=0, description="Wait between probes.")
        timeout_s: float = Field(60.0, gt=0, description="Give up after this long.")
        request_timeout_s: float = Field(5.0, gt=0)

    class Outputs(BaseOutputs):
        url: str
        probes: int = Field(..., description="Probes sent.")
        last: str = Field(..., description="The last probe's verdict.")

    def plan(self, params: HttpCheck.Params) -> str:
        return f"{params.method} {params.url} until {params.successes} consecutive {params.expect_status} answers"

    def run(self, ctx: StageContext, params: HttpCheck.Params) -> StageResult[HttpCheck.Outputs]:
        spec = Probe(url=params.url, method=params.method, expect_status=tuple(params.expect_status),
                     expect_json=params.expect_json or None, budget_ms=params.budget_ms,
                     timeout_s=params.request_timeout_s)
        sent, last = _wait_until_healthy(ctx, spec, params.successes, params.interval_s, params.timeout_s)
        return StageResult(outputs=self.Outputs(url=params.url, probes=sent, last=last.reason), summary=last.reason)


class VerifyHealth:
    """Verify a deployed service: healthy N times in a row, still healthy over a window, smoke requests pass."""

    type: ClassVar[str] = "verify.health"
    description: ClassVar[str] = (
        "Verify a deployed service's health (status, JSON, deployed commit) and its smoke requests from the moment "
        "it is live (a 5xx from the deployed commit fails at once), observe it for a window."
    )
    touches_production: ClassVar[bool] = False

    class Params(BaseParams):
        service: str = Field(..., description="Service target key.")
        path: str | None = Field(None, description="Health path; default: the target's health_path.")
        expect_status: list[int] = Field(default_factory=lambda: [200])
        expect_json: dict[str, Any] = Field(
            default_factory=dict, description='dotted.path: expected value, e.g. {status: healthy, database: ok}.'
        )
        expect_commit: bool = Field(True, description="Require the health JSON to report the deployed commit.")
        commit_field: str = Field("commit", description="Where the health JSON reports the commit.")
        budget_ms: float | None = Field(2000, gt=0, description="Slowest acceptable health response.")
        successes: int = Field(3, ge=1, description="Consecutive successes before the release counts as healthy.")
        interval_s: float = Field(2.0, gt=0, description="Wait between probes.")
        healthy_within_s: float = Field(120.0, gt=0, description="Time allowed to become healthy.")
        observe_s: float = Field(60.0, ge=0, description="Observation window after the release is healthy.")
        failure_threshold: int = Field(3, ge=1, description="Consecutive failed checks that fail the release (once "
                                                            "live, and in the observation window).")
        request_timeout_s: float = Field(5.0, gt=0)
        smoke: list[SmokeRequest] = Field(default_factory=list, description="Requests that must succeed: sent once "
                                          "the deployed commit answers, after the health verdict and after the "
                                          "observation window.")

    class Outputs(BaseOutputs):
        service: str
        url: str = Field(..., description="The health URL probed.")
        commit: str | None = Field(None, description="The commit the health endpoint had to report.")
        probes: int = 0
        observed_s: float = 0.0
        smoke: int = Field(0, description="Smoke requests configured.")

    def plan(self, params: VerifyHealth.Params) -> str:
        extra = f", then {len(params.smoke)} smoke request(s)" if params.smoke else ""
        return (f"probe {params.service}{params.path or ' health path'} until {params.successes} consecutive "
                "successes, "
                f"observe {params.observe_s:g}s (fail after {params.failure_threshold} failures){extra}")

    # -- helpers -----------------------------------------------------------------
    def _base_url(self, ctx: StageContext, key: str) -> str:
        target = ctx.resources.targets.services[key]
        if target.url:
            return target.url.rstrip("/")
        release = ctx.latest(ServiceRelease, where=lambda o: o.service == key and bool(o.url))
        if release is not None and release.url:
            return release.url.rstrip("/")
        preflight = ctx.latest(RenderPreflight.Outputs, where=lambda o: bool(key in o.services and o.services[key].url))
        if preflight is not None and preflight.services[key].url:
            return str(preflight.services[key].url).rstrip("/")
        service = ctx.resources.render.find_service(target.id or target.name or key)
        if not service.url:
            raise StageErrored(f"service {target.ref} has no URL", where=ctx.where,
                               hint=f"set targets.services.{key}.url")
        return service.url.rstrip("/")

    def _deployed_commit(self, ctx: StageContext, key: str) -> str | None:
        release = ctx.latest(ServiceRelease, where=lambda o: o.service == key)
        return release.commit if release is not None else None

    def _probe(self, ctx: StageContext, params: VerifyHealth.Params, commit: str | None) -> Probe:
        target = ctx.resources.targets.services[params.service]
        base = self._base_url(ctx, params.service)
        return Probe(url=base + (params.path or target.health_path), expect_status=tuple(params.expect_status),
                     expect_json=params.expect_json or None, budget_ms=params.budget_ms,
                     commit_field=params.commit_field, expect_commit=commit if params.expect_commit else None,
                     timeout_s=params.request_timeout_s)

    def _observe(self, ctx: StageContext, spec: Probe, params: VerifyHealth.Params) -> int:
        streak = _Streak()

        def degraded() -> ProbeResult | None:
            result = _probe_once(ctx, spec, phase="observe")
            streak.sent += 1
            if result.ok:
                streak.failures = 0
                return None
            streak.failures += 1
            ctx.emit("health_degraded", url=spec.url, reason=result.reason, consecutive_failures=streak.failures)
            return result if streak.failures >= params.failure_threshold else None

        failed = poll(degraded, timeout_s=params.observe_s, interval_s=params.interval_s, clock=ctx.clock,
                      sleep=ctx.sleep, wait_first=True)
        if failed is not None:
            raise StageFailed(f"{spec.url} became unhealthy during the observation window "
                              f"({streak.failures} consecutive failures): {failed.reason}", where=ctx.where)
        return streak.sent

    def _smoke_requests(self, ctx: StageContext, params: VerifyHealth.Params) -> list[tuple[SmokeRequest, Probe]]:
        base = self._base_url(ctx, params.service)
        return [(smoke, smoke_probe(base, smoke, params.commit_field, params.request_timeout_s))
                for smoke in params.smoke]

    # -- stage -------------------------------------------------------------------
    def run(self, ctx: StageContext, params: VerifyHealth.Params) -> StageResult[VerifyHealth.Outputs]:
        commit = self._deployed_commit(ctx, params.service) if params.expect_commit else None
        spec = self._probe(ctx, params, commit)
        smokes = self._smoke_requests(ctx, params)
        early = EarlySmoke(ctx, smokes, commit, confirm=lambda: _probe_once(ctx, spec))
        try:
            sent, last = _wait_until_healthy(ctx, spec, params.successes, params.interval_s,
                                             params.healthy_within_s, params.failure_threshold, after_probe=early)
            ctx.emit("health_verified", url=spec.url, probes=sent, commit=commit)
            check_all(ctx, smokes, "healthy")
            observed = self._observe(ctx, spec, params) if params.observe_s else 0
            if params.observe_s:
                check_all(ctx, smokes, "observed")
        except StageFailed as exc:
            release = ctx.latest(ServiceRelease, where=lambda o: o.service == params.service)
            line = explain_release(ctx, release) if release is not None else ""
            if not line:
                raise
            raise StageFailed(f"{exc.message}; app log: {line}", where=exc.where, hint=exc.hint) from exc
        outputs = self.Outputs(service=params.service, url=spec.url, commit=commit, probes=sent + observed,
                               observed_s=params.observe_s, smoke=len(params.smoke))
        return StageResult(outputs=outputs, summary=f"healthy ({sent} probes), stable for {params.observe_s:g}s")

    def verify_after_rollback(self, ctx: StageContext, params: VerifyHealth.Params,
                              restored: Mapping[str, Restored]) -> Compensation | None:
        """After a rollback of ``params.service``, prove the restored release serves and is healthy."""
        if params.service not in restored:
            return None
        commit = restored[params.service].commit
        spec = self._probe(ctx, params, commit)
        details = {"service": params.service, "url": spec.url, "commit": commit}
        try:
            sent, last = _wait_until_healthy(ctx, spec, params.successes, params.interval_s, params.healthy_within_s,
                                             params.failure_threshold, phase="after_rollback")
        except StageFailed as exc:
            return Compensation(action="health_unverified", verified=False, summary=exc.message, details=details)
        return Compensation(action="health_verified", verified=True, summary=f"{spec.url}: {last.reason}",
                            details={**details, "probes": sent})
