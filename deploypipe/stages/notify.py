"""``notify.webhook``: post the run's summary to a webhook (JSON or Slack-compatible); never fails the deploy.

It reads ``ctx.run``, the run's :class:`~deploypipe.stages.report.Report`
so far: a finalizer (``when: always``) sees the provisional outcome the
runner decided (``deployed``, ``blocked``, ``rolled_back``, ``needs_human``);
a stage in the middle of a run sees ``running`` and the outcome is derived
from the stages and the rollback. This stage itself is left out of the stages.

The webhook URL is a secret read from the environment variable ``url_env``: it
never appears in logs, journal events, outputs or errors (only its scheme and
host do). A failure to notify (variable missing, connection refused, timeout,
non-2xx) is a warning with outputs ``{sent: false, error}``. Connection
failures, timeouts, 429 and 5xx are retried (3 attempts in all, waits through
``ctx.sleep``); a retry after a timeout or 5xx may deliver the message twice,
which is better for a failure notice than not delivering it.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

import httpx
from pydantic import Field
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from deploypipe.core.retry_after import retry_after_s
from deploypipe.stages.base import Outputs as BaseOutputs
from deploypipe.stages.base import Params as BaseParams
from deploypipe.stages.base import StageResult
from deploypipe.stages.context import StageContext
from deploypipe.stages.report import Outcome, Report

__all__ = ["NotifyWebhook", "run_outcome", "summary_text"]

ATTEMPTS = 3
SUCCESS_OUTCOMES = ("deployed", "unchanged", "rollback_verified")
RESULTS: tuple[Literal["success", "failure"], ...] = ("success", "failure")
_MAX_RETRY_AFTER_S = 30.0


class _NotDelivered(Exception):
    """The webhook answered with a non-2xx status."""

    def __init__(self, status: int, body: str, wait_s: float | None = None):
        self.status = status
        self.wait_s = wait_s
        super().__init__(f"HTTP {status}" + (f": {body}" if body else ""))


class _Transient(_NotDelivered):
    """429 or 5xx: worth another attempt."""


def run_outcome(run: Report, own_stage: str | None = None) -> str:
    """The run's outcome; while it is still ``running``, derived from failed stages and the rollback."""
    if run.outcome is not Outcome.RUNNING:
        return run.outcome.value
    if run.rollback.performed:
        return "rolled_back" if run.rollback.verified else "needs_human"
    if any(s.failed for s in run.stages if s.id != own_stage):
        return "failed"
    return "deployed"


def summary_text(run: Report, outcome: str, own_stage: str | None = None) -> str:
    """A short human summary: outcome, what failed, what was deployed or rolled back, where the report is."""
    stages = [s for s in run.stages if s.id != own_stage]
    head = f"deploypipe {run.pipeline}: {outcome.replace('_', ' ').upper()}"
    if run.outcome is not Outcome.RUNNING:
        head += f" (exit {run.exit_code})"
    lines = [head + f", run {run.run_id}"]
    done = sum(1 for s in stages if s.status == "succeeded")
    failed = [s for s in stages if s.failed]
    lines.append(f"{done}/{len(stages)} stages succeeded" + "".join(f"; {s.id} ({s.type}) {s.status}" for s in failed))
    for deploy in run.deploys:
        commit = (deploy.commit or "")[:7] or "?"
        lines.append(f"{deploy.service}: {deploy.status or '?'} {commit} ({deploy.deploy_id or '?'})")
    if run.rollback.performed:
        state = "verified" if run.rollback.verified else "NOT VERIFIED - a human must act"
        lines.append(f"rollback {state}" + "".join(f"; {i.stage}: {i.summary}" for i in run.rollback.items))
    for diagnostic in run.diagnostics:
        lines.append(f"why ({diagnostic.kind} log of {diagnostic.service}): {diagnostic.headline}")
        lines += [f"    {line}" for line in diagnostic.lines]
    lines.append(f"report: {run.report_path}")
    return "\n".join(lines)


def _destination(url: str) -> str:
    """Scheme and host only: the path and query of a webhook URL are the secret."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "***"
    return f"{parts.scheme}://{parts.hostname}/***" if parts.scheme and parts.hostname else "***"


def _server_wait(response: httpx.Response) -> float | None:
    """How long the webhook asks us to wait before trying again, at most 30 s."""
    seconds = retry_after_s(response)
    return None if seconds is None else min(seconds, _MAX_RETRY_AFTER_S)


#: worth another attempt: the webhook could not be reached, did not answer in time, or said so (429/5xx)
_RETRYABLE = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError, _Transient)


class NotifyWebhook:
    """Post the run summary to a webhook; a failed notification is only a warning."""

    type: ClassVar[str] = "notify.webhook"
    description: ClassVar[str] = ("Post the run summary (JSON, or Slack-compatible {text}) to the webhook URL held in "
                                  "an environment variable; a failed notification is a warning, never a failure.")
    touches_production: ClassVar[bool] = False

    class Params(BaseParams):
        url_env: str = Field(..., min_length=1, description="Environment variable holding the webhook URL (a secret).")
        on: list[Literal["success", "failure"]] = Field(
            default_factory=lambda: list(RESULTS), description="Notify on these run results."
        )
        format: Literal["json", "slack"] = Field("json", description='"json": the run summary; "slack": {"text": ...}.')
        timeout_s: float = Field(5.0, gt=0, description="Timeout of each POST.")

    def plan(self, params: NotifyWebhook.Params) -> str:
        return f"POST the run summary ({params.format}) to ${params.url_env} on {' or '.join(params.on)}"

    class Outputs(BaseOutputs):
        sent: bool
        status: int | None = Field(None, description="The webhook's HTTP status.")
        attempts: int = 0
        destination: str = Field("", description="Scheme and host of the webhook (its path is secret).")
        format: str = ""
        outcome: str = ""
        skipped: str = Field("", description="Why nothing was sent, when the run's result is not notified.")
        error: str = ""

    def payload(self, run: Report, outcome: str, fmt: str, own_stage: str) -> dict[str, Any]:
        text = summary_text(run, outcome, own_stage)
        if fmt == "slack":
            return {"text": text}
        return {
            "run_id": run.run_id, "pipeline": run.pipeline, "outcome": outcome,
            "exit_code": run.exit_code if run.outcome is not Outcome.RUNNING else None,
            "stages": [{"id": s.id, "type": s.type, "status": s.status, "duration_s": s.duration_s}
                       for s in run.stages if s.id != own_stage],
            "deploys": [d.model_dump(mode="json") for d in run.deploys],
            "rollback": run.rollback.model_dump(mode="json"), "report_path": str(run.report_path), "text": text,
            "diagnostics": [d.model_dump(mode="json") for d in run.diagnostics],
        }

    def run(self, ctx: StageContext, params: NotifyWebhook.Params) -> StageResult[NotifyWebhook.Outputs]:
        run = ctx.run
        outcome = run_outcome(run, ctx.stage_id)
        kind = "success" if outcome in SUCCESS_OUTCOMES else "failure"
        if kind not in params.on:
            return StageResult(outputs=self.Outputs(sent=False, skipped=f"run {kind}; notifying only on {params.on}"),
                               summary=f"not notified: the run is a {kind}")
        url = (ctx.resources.env.get(params.url_env) or "").strip()
        if not url:
            return self._not_sent(ctx, f"{params.url_env} is not set", attempts=0)
        ctx.resources.redactor.add(url)
        body = ctx.resources.redactor(self.payload(run, outcome, params.format, ctx.stage_id))
        attempts = 0

        def post() -> httpx.Response:
            nonlocal attempts
            attempts += 1
            response = ctx.resources.http.post(url, json=body, timeout=params.timeout_s)
            if response.is_success:
                return response
            error = _Transient if response.status_code == 429 or response.status_code >= 500 else _NotDelivered
            raise error(response.status_code, ctx.resources.redactor.text(response.text[:200].strip()),
                        _server_wait(response))

        try:
            response = Retrying(
                stop=stop_after_attempt(ATTEMPTS), wait=self._wait, sleep=ctx.sleep, reraise=True,
                retry=retry_if_exception_type(_RETRYABLE),
                before_sleep=lambda state: ctx.log.warning(
                    "notification_retrying", attempt=state.attempt_number,
                    error=self._describe(state.outcome.exception() if state.outcome else None, url)),
            )(post)
        except (httpx.HTTPError, httpx.InvalidURL, _NotDelivered) as exc:
            return self._not_sent(ctx, self._describe(exc, url), attempts)
        destination = _destination(url)
        ctx.emit("notification_sent", destination=destination, status=response.status_code, attempts=attempts,
                 outcome=outcome)
        ctx.log.info("notification_sent", destination=destination, status=response.status_code, attempts=attempts)
        return StageResult(outputs=self.Outputs(sent=True, status=response.status_code, attempts=attempts,
                                                destination=destination, format=params.format, outcome=outcome),
                           summary=f"notified {destination} ({outcome})")

    @staticmethod
    def _wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Transient) and exc.wait_s is not None:
            return exc.wait_s
        return float(2 ** (state.attempt_number - 1))  # 1 s, then 2 s

    @staticmethod
    def _describe(exc: BaseException | None, url: str) -> str:
        text = f"{type(exc).__name__}: {exc}" if not isinstance(exc, _NotDelivered) else str(exc)
        return text.replace(url, _destination(url)) if url else text

    def _not_sent(self, ctx: StageContext, error: str, attempts: int) -> StageResult[NotifyWebhook.Outputs]:
        error = ctx.resources.redactor.text(error)
        ctx.emit("notification_failed", error=error, attempts=attempts)
        ctx.log.warning("notification_failed", error=error, attempts=attempts)
        return StageResult(outputs=self.Outputs(sent=False, error=error, attempts=attempts),
                           warnings=(f"notification not sent: {error}",), summary="notification not sent")
