"""``notify.webhook``: post the run's summary to a webhook (JSON or Slack-compatible); never fails the deploy.

What it reads from ``ctx.outputs["_run"]`` (the runner's live run summary):

    run_id, pipeline            names the run
    outcome, exit_code          "deployed" | "blocked" | "rolled_back" | "needs_human" | "rollback_verified" |
                                "rollback_failed", or "running" while the run is still going (a ``when: always``
                                stage at the end), in which case the outcome is derived from the stages and rollback
    stages[]                    {id, type, status, duration_s}; this stage itself is left out
    deploys[]                   {service, deploy_id, commit, status}
    rollback                    {performed, verified, items[{stage, summary, verified}]}
    report_path                 where the full report is written

The webhook URL is a secret read from the environment variable ``url_env``: it
never appears in logs, journal events, outputs or errors (only its scheme and
host do). A failure to notify (variable missing, connection refused, timeout,
non-2xx) is a warning with outputs ``{sent: false, error}``. Connection
failures, timeouts, 429 and 5xx are retried (3 attempts in all, waits through
``ctx.sleep``); a retry after a timeout or 5xx may deliver the message twice,
which is better for a failure notice than not delivering it.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Mapping
from urllib.parse import urlsplit

import httpx
from pydantic import Field
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from deploypipe.stages.base import Params, StageContext, StageResult

__all__ = ["NotifyWebhook", "run_outcome", "summary_text"]

ATTEMPTS = 3
SUCCESS_OUTCOMES = ("deployed", "rollback_verified")
_MAX_RETRY_AFTER_S = 30.0


class _NotDelivered(Exception):
    """The webhook answered with a non-2xx status."""

    def __init__(self, status: int, body: str, retry_after_s: float | None = None):
        self.status = status
        self.retry_after_s = retry_after_s
        super().__init__(f"HTTP {status}" + (f": {body}" if body else ""))


class _Transient(_NotDelivered):
    """429 or 5xx: worth another attempt."""


def run_outcome(run: Mapping[str, Any], own_stage: str | None = None) -> str:
    """The run's outcome; while it is still ``running``, derived from failed stages and the rollback."""
    outcome = run.get("outcome")
    if outcome and outcome != "running":
        return str(outcome)
    rollback = run.get("rollback") or {}
    if rollback.get("performed"):
        return "rolled_back" if rollback.get("verified") else "needs_human"
    if any(s.get("status") in ("failed", "errored") for s in run.get("stages") or [] if s.get("id") != own_stage):
        return "failed"
    return "deployed"


def summary_text(run: Mapping[str, Any], outcome: str, own_stage: str | None = None) -> str:
    """A short human summary: outcome, what failed, what was deployed or rolled back, where the report is."""
    stages = [s for s in run.get("stages") or [] if s.get("id") != own_stage]
    head = f"deploypipe {run.get('pipeline', '?')}: {outcome.replace('_', ' ').upper()}"
    if run.get("exit_code") is not None and run.get("outcome") not in (None, "running"):
        head += f" (exit {run['exit_code']})"
    lines = [head + f", run {run.get('run_id', '?')}"]
    done = sum(1 for s in stages if s.get("status") == "succeeded")
    failed = [s for s in stages if s.get("status") in ("failed", "errored")]
    lines.append(f"{done}/{len(stages)} stages succeeded" + "".join(
        f"; {s['id']} ({s.get('type', '?')}) {s['status']}" for s in failed))
    for deploy in run.get("deploys") or []:
        commit = str(deploy.get("commit") or "")[:7] or "?"
        lines.append(f"{deploy.get('service', '?')}: {deploy.get('status', '?')} {commit} ({deploy.get('deploy_id', '?')})")
    rollback = run.get("rollback") or {}
    if rollback.get("performed"):
        state = "verified" if rollback.get("verified") else "NOT VERIFIED - a human must act"
        lines.append(f"rollback {state}" + "".join(
            f"; {i.get('stage', '?')}: {i.get('summary', '')}" for i in rollback.get("items") or []))
    if run.get("report_path"):
        lines.append(f"report: {run['report_path']}")
    return "\n".join(lines)


def _destination(url: str) -> str:
    """Scheme and host only: the path and query of a webhook URL are the secret."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "***"
    return f"{parts.scheme}://{parts.hostname}/***" if parts.scheme and parts.hostname else "***"


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return min(float(response.headers["retry-after"]), _MAX_RETRY_AFTER_S)
    except (KeyError, ValueError):
        return None


#: worth another attempt: the webhook could not be reached, did not answer in time, or said so (429/5xx)
_RETRYABLE = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError, _Transient)


class NotifyWebhook:
    """Post the run summary to a webhook; a failed notification is only a warning."""

    type: ClassVar[str] = "notify.webhook"
    description: ClassVar[str] = ("Post the run summary (JSON, or Slack-compatible {text}) to the webhook URL held in "
                                  "an environment variable; a failed notification is a warning, never a failure.")
    touches_production: ClassVar[bool] = False

    class Params(Params):
        url_env: str = Field(..., min_length=1, description="Environment variable holding the webhook URL (a secret).")
        on: list[Literal["success", "failure"]] = Field(
            default_factory=lambda: ["success", "failure"], description="Notify on these run results."
        )
        format: Literal["json", "slack"] = Field("json", description='"json": the run summary; "slack": {"text": ...}.')
        timeout_s: float = Field(5.0, gt=0, description="Timeout of each POST.")

    def plan(self, params: "NotifyWebhook.Params") -> str:
        return f"POST the run summary ({params.format}) to ${params.url_env} on {' or '.join(params.on)}"

    def payload(self, run: Mapping[str, Any], outcome: str, fmt: str, own_stage: str) -> dict[str, Any]:
        text = summary_text(run, outcome, own_stage)
        if fmt == "slack":
            return {"text": text}
        return {
            "run_id": run.get("run_id"), "pipeline": run.get("pipeline"), "outcome": outcome,
            "exit_code": run.get("exit_code") if run.get("outcome") not in (None, "running") else None,
            "stages": [dict(s) for s in run.get("stages") or [] if s.get("id") != own_stage],
            "deploys": [dict(d) for d in run.get("deploys") or []],
            "rollback": dict(run.get("rollback") or {}), "report_path": run.get("report_path"), "text": text,
        }

    def run(self, ctx: StageContext, params: "NotifyWebhook.Params") -> StageResult:
        run = ctx.outputs.get("_run") or {}
        outcome = run_outcome(run, ctx.stage_id)
        kind = "success" if outcome in SUCCESS_OUTCOMES else "failure"
        if kind not in params.on:
            return StageResult(outputs={"sent": False, "skipped": f"run {kind}; notifying only on {params.on}"},
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
                        _retry_after(response))

        try:
            response = Retrying(
                stop=stop_after_attempt(ATTEMPTS), wait=self._wait, sleep=ctx.sleep, reraise=True,
                retry=retry_if_exception_type(_RETRYABLE),
                before_sleep=lambda state: ctx.log.warning("notification_retrying", attempt=state.attempt_number,
                                                           error=self._describe(state.outcome.exception(), url)),
            )(post)
        except (httpx.HTTPError, httpx.InvalidURL, _NotDelivered) as exc:
            return self._not_sent(ctx, self._describe(exc, url), attempts)
        destination = _destination(url)
        ctx.emit("notification_sent", destination=destination, status=response.status_code, attempts=attempts,
                 outcome=outcome)
        ctx.log.info("notification_sent", destination=destination, status=response.status_code, attempts=attempts)
        return StageResult(outputs={"sent": True, "status": response.status_code, "attempts": attempts,
                                    "destination": destination, "format": params.format, "outcome": outcome},
                           summary=f"notified {destination} ({outcome})")

    @staticmethod
    def _wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Transient) and exc.retry_after_s is not None:
            return exc.retry_after_s
        return float(2 ** (state.attempt_number - 1))  # 1 s, then 2 s

    @staticmethod
    def _describe(exc: BaseException | None, url: str) -> str:
        text = f"{type(exc).__name__}: {exc}" if not isinstance(exc, _NotDelivered) else str(exc)
        return text.replace(url, _destination(url)) if url else text

    def _not_sent(self, ctx: StageContext, error: str, attempts: int) -> StageResult:
        error = ctx.resources.redactor.text(error)
        ctx.emit("notification_failed", error=error, attempts=attempts)
        ctx.log.warning("notification_failed", error=error, attempts=attempts)
        return StageResult(outputs={"sent": False, "error": error, "attempts": attempts},
                           warnings=(f"notification not sent: {error}",), summary="notification not sent")
