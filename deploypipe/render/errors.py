"""Map Render API answers and httpx transport failures onto deploypipe's error tree, with Render's own words.

    401/403                      -> AuthenticationError       (hint: check RENDER_API_KEY)
    404                          -> NotFoundError             (names the resource)
    409                          -> ConflictError
    429                          -> RateLimitedError          (retry_after_s from Retry-After / Ratelimit-Reset)
    5xx, connect/read failures   -> TransientProviderError    (``sent``: may the request have been processed?)
    anything else                -> ProviderError

Every error carries ``where`` = ``METHOD /path`` (never headers), ``status_code``
and Render's ``error_id``, and the httpx ``request``/``response``.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import httpx

from deploypipe.core.retry_after import retry_after_s
from deploypipe.errors import (
    AuthenticationError,
    ConflictError,
    NotFoundError,
    ProviderError,
    RateLimitedError,
    TransientProviderError,
)

__all__ = ["error_for_response", "error_for_transport"]

def _render_text(response: httpx.Response) -> tuple[str, str | None]:
    """Render's ``{id, message}`` (``code`` when present) as text, and the error id."""
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and (body.get("message") or body.get("id")):
        error_id = body.get("code") or body.get("id")
        return f"{body.get('message') or 'no message'} (Render error id {error_id})", error_id
    text = " ".join(response.text.split())[:200]
    return text or response.reason_phrase or "no message", None


def error_for_response(response: httpx.Response, resource: str | None = None,
                       wall_clock: Callable[[], float] = time.time) -> ProviderError:
    """The error for a non-2xx answer; ``resource`` (e.g. ``service srv-1``) names what a 404 could not find."""
    request = response.request
    status = response.status_code
    text, error_id = _render_text(response)
    common: dict[str, Any] = {"where": f"{request.method} {request.url.path}", "request": request,
                              "response": response, "status_code": status, "error_id": error_id}
    if status in (401, 403):
        verdict = "the API key is missing or invalid" if status == 401 else "the API key may not access this"
        return AuthenticationError(f"{status}: {verdict}: {text}", hint="check RENDER_API_KEY: it must be a valid "
                                   "Render API key of a member of the service's workspace", **common)
    if status == 404:
        return NotFoundError(f"404: {resource or 'resource'} not found: {text}",
                             hint="check the id or name in the pipeline targets and that RENDER_API_KEY's "
                                  "workspace owns it", **common)
    if status == 409:
        return ConflictError(f"409 conflict: {text}", hint="the resource changed state meanwhile; look at it "
                             "in the Render dashboard", **common)
    if status == 429:
        wait = retry_after_s(response, wall_clock)
        after = f"; Render asks to wait {wait:g}s" if wait is not None else ""
        return RateLimitedError(f"429 rate limited: {text}{after}", retry_after_s=wait,
                                hint="Render allows 10 deploys per minute per service and a few hundred GETs per "
                                     "minute; space out runs", **common)
    if status >= 500:
        return TransientProviderError(f"{status} from Render: {text}", sent=True,
                                      hint="Render had a passing failure; retry later", **common)
    return ProviderError(f"{status}: {text}", **common)


_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_MAYBE_SENT = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


def error_for_transport(exc: httpx.RequestError) -> ProviderError:
    """A failure without an answer. ``sent`` is True when Render may have processed the request."""
    try:
        request: httpx.Request | None = exc.request
    except RuntimeError:
        request = None
    where = f"{request.method} {request.url.path}" if request is not None else None
    kind = type(exc).__name__
    if isinstance(exc, _NOT_SENT):
        return TransientProviderError(f"{kind}: could not reach Render (the request was not sent)", where=where,
                                      request=request, sent=False, hint="check RENDER_API_URL and the network")
    if isinstance(exc, _MAYBE_SENT):
        return TransientProviderError(f"{kind}: no answer after sending (Render may have processed the request)",
                                      where=where, request=request, sent=True, hint="check the network; retry later")
    return ProviderError(f"{kind}: {exc}", where=where, request=request,
                         hint="check RENDER_API_URL (it must look like https://api.render.com/v1)")
