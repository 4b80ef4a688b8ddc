"""The watch of ``status`` (``notify_env``): post to a webhook once per new problem and once when it clears.

The problem's fingerprint (service, kind, live deploy: not counts or ages, which move every run) is kept in a small
state file, updated only after the webhook took the message, so an undelivered message is tried again on the next
run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import structlog

from deploypipe.commands.invocation import Invocation
from deploypipe.commands.status_model import StatusReport

__all__ = ["watch_notify"]

log = structlog.get_logger("deploypipe.status")


def _post(inv: Invocation, url: str, body: dict[str, Any]) -> str:
    """POST ``body`` (3 attempts for network errors, 429 and 5xx); '' when delivered, else why not (URL masked)."""
    import time

    import httpx
    from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

    http = inv.http_factory() if inv.http_factory else httpx.Client(timeout=httpx.Timeout(10.0, connect=5.0))
    try:
        for attempt in Retrying(stop=stop_after_attempt(3), wait=wait_exponential(1, max=4), reraise=True,
                                sleep=inv.sleep or time.sleep,
                                retry=retry_if_exception_type((httpx.TransportError, httpx.HTTPStatusError))):
            with attempt:
                response = http.post(url, json=body)
                if response.status_code == 429 or response.status_code >= 500:
                    response.raise_for_status()
        return "" if response.is_success else f"HTTP {response.status_code}"
    except httpx.HTTPStatusError as exc:
        return f"HTTP {exc.response.status_code} after 3 attempts"
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}".replace(url, "<webhook>")
    finally:
        if inv.http_factory is None:
            http.close()


def watch_notify(inv: Invocation, report: StatusReport, *, url_env: str, state: Path, slack: bool = False) -> str:
    """Notify a new problem or a recovery once (fingerprint kept in ``state``); returns what happened."""
    try:
        previous = json.loads(state.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        previous = {}
    if previous.get("fingerprint", "") == report.fingerprint:
        return "unchanged: already notified" if report.fingerprint else "unchanged: healthy"
    event = "problem" if report.fingerprint else "recovered"
    url = (inv.env.get(url_env) or "").strip()
    if not url:
        return f"not sent: {url_env} is not set"
    frozen = [s.message for s in report.services if s.problems]
    text = (f"deploypipe {report.pipeline}: PRODUCTION FROZEN\n" + "\n".join(frozen) if frozen else
            f"deploypipe {report.pipeline}: RECOVERED\n" + "\n".join(s.message for s in report.services))
    body = {"text": text} if slack else {"event": event, "text": text, **report.model_dump(mode="json")}
    error = _post(inv, url, body)
    if error:
        log.warning("notification_failed", error=error, kind=event)
        return f"not sent: {error}"
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text(json.dumps({"fingerprint": report.fingerprint, "event": event, "at": report.checked_at,
                                 "text": text}, indent=2) + "\n", encoding="utf-8")
    log.info("notification_sent", kind=event, fingerprint=report.fingerprint)
    return f"sent: {event}"
