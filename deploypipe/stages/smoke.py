"""Smoke requests of ``verify.health``: sent from the moment a release is live; a 5xx from its commit fails at once.

While the health probes wait for N consecutive successes, each probe that reports the expected commit is followed
by a round of smoke requests, until a round has no 5xx left undecided. A smoke answer is *certain* to come from the
new release when it is a 5xx and either its own JSON reports the expected commit (``commit_field``), or the health
probe just before it and one sent just after it both report that commit (that one is sent again at once when it got
no answer, e.g. on a kept-alive connection the server had closed). Such an answer fails the stage at once. Any other
failure (another status, wrong JSON, a network error, a stale instance, or no commit to check) waits for the health
verdict, after which every smoke request must pass (``check_all``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field

from deploypipe.core.commits import same_commit
from deploypipe.core.probe import Probe, ProbeResult, probe
from deploypipe.errors import StageFailed
from deploypipe.stages.base import Params as BaseParams
from deploypipe.stages.context import StageContext

__all__ = ["EarlySmoke", "SmokeRequest", "check_all", "smoke_probe"]


class SmokeRequest(BaseParams):
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "GET"
    path: str = Field(..., description="Path on the service, e.g. /api/notes.")
    body: Any = Field(None, description="JSON body.")
    expect_status: list[int] = Field(default_factory=lambda: [200])
    expect_json: dict[str, Any] = Field(default_factory=dict, description="dotted.path: expected value.")


def smoke_probe(base_url: str, smoke: SmokeRequest, commit_field: str, timeout_s: float) -> Probe:
    """The probe for one smoke request; it reads the commit its answer reports, if any, without requiring one."""
    return Probe(url=base_url + smoke.path, method=smoke.method, body=smoke.body,
                 expect_status=tuple(smoke.expect_status), expect_json=smoke.expect_json or None,
                 commit_field=commit_field, timeout_s=timeout_s)


def _send(ctx: StageContext, smoke: SmokeRequest, spec: Probe, phase: str) -> ProbeResult:
    """One smoke request, journalled (``smoke_request``)."""
    result = probe(ctx.resources.http, spec)
    ctx.emit("smoke_request", method=smoke.method, path=smoke.path, phase=phase, ok=result.ok, status=result.status,
             elapsed_ms=round(result.elapsed_ms, 1), reason=result.reason, commit=result.commit)
    return result


def check_all(ctx: StageContext, requests: Sequence[tuple[SmokeRequest, Probe]], phase: str) -> None:
    """Send every smoke request once; the first that fails in any way fails the stage."""
    for smoke, spec in requests:
        result = _send(ctx, smoke, spec, phase)
        if not result.ok:
            raise StageFailed(f"smoke {smoke.method} {smoke.path}: {result.reason}", where=ctx.where)


@dataclass
class EarlySmoke:
    """Rounds of smoke requests after health probes that report the expected commit; certain failures raise.

    Called after every health probe; ``confirm`` sends one more (journalled) health probe. Rounds stop once one had
    no 5xx left undecided (from a stale instance, or with no probe to confirm the commit).
    """

    ctx: StageContext
    requests: Sequence[tuple[SmokeRequest, Probe]]
    commit: str | None
    confirm: Callable[[], ProbeResult]
    done: bool = False

    def __call__(self, health: ProbeResult) -> None:
        if self.done or not self.requests or self.commit is None:
            return
        if not same_commit(health.commit, self.commit):
            return  # the stable URL still serves another release (or reports none): wait for the next probe
        undecided = False
        for smoke, spec in self.requests:
            result = _send(self.ctx, smoke, spec, "live")
            if not result.server_error:
                continue
            if self._from_release(result):
                raise StageFailed(f"smoke {smoke.method} {smoke.path}: {result.reason} from commit "
                                  f"{self.commit[:12]}, the new release", where=self.ctx.where)
            undecided = True
        self.done = not undecided

    def _from_release(self, result: ProbeResult) -> bool:
        if result.commit is not None:
            return same_commit(result.commit, self.commit)
        confirmed = self.confirm()
        if confirmed.status is None:  # no answer at all: once more, on a fresh connection
            confirmed = self.confirm()
        return same_commit(confirmed.commit, self.commit)
