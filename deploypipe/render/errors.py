"""Map Render API answers and transport failures to deploypipe's error tree, with Render's own text."""

from __future__ import annotations

from typing import Any

import httpx

from deploypipe.errors import (
    AuthenticationError,
    ConflictError,
    NotFoundError,
    ProviderError,
    RateLimitedError,
    TransientProviderError,
)

__all__ = ["error_for_response", "error_for_transport", "retry_after_s"]

_AMBIGUOUS = (httpx.ReadTimeout, httpx.WriteTimeout, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)


def retry_after_s(response: httpx.Response) -> float | None:
    """Seconds to wait from ``Retry-After``, else ``Ratelimit-Reset`` (seconds until the window resets)."""
    for header in ("Retry-After", "Ratelimit-Reset"):
        value = response.headers.get(header)
        if value is None:
            continue
        try:
            seconds = float(value)
        except ValueError:
            continue
        if seconds > 1e9:  # an epoch timestamp rather than a delay
            import time

            seconds = max(0.0, seconds - time.time())
        return max(0.0, seconds)
    return None


def _render_text(response: httpx.Response) -> str:
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("message"):
        return f"{body['message']} (id {body.get('id', '?')})"
    text = response.text.strip()
    return text[:200] if text else response.reason_phrase


def error_for_response(response: httpx.Response, resource: str | None = None) -> ProviderError:
    request = response.request
    where = f"{request.method} {request.url.path}"
    status = response.status_code
    text = _render_text(response)
    common = {"where": where, "request": request, "response": response, "status_code": status}
    if status in (401, 403):
        return AuthenticationError(f"{status}: {text}", hint="check RENDER_API_KEY: it must be a valid Render API key "
                                   "with access to this workspace", **common)
    if status == 404:
        return NotFoundError(f"404: {resource or 'resource'} not found: {text}",
                             hint="check the service/deploy id or name in the pipeline targets", **common)
    if status == 409:
        return ConflictError(f"409 conflict: {text}", **common)
    if status == 429:
        wait = retry_after_s(response)
        return RateLimitedError(f"429 rate limited: {text}", retry_after_s=wait,
                                hint="Render allows 10 deploys/minute per service", **common)
    if status >= 500:
        return TransientProviderError(f"{status} from Render: {text}", ambiguous=True, **common)
    return ProviderError(f"{status}: {text}", **common)


def error_for_transport(exc: httpx.TransportError) -> TransientProviderError:
    """A transport failure; ``ambiguous`` when the request may have reached Render."""
    request = getattr(exc, "_request", None)
    where = f"{request.method} {request.url.path}" if request is not None else None
    ambiguous = isinstance(exc, _AMBIGUOUS)
    what = "no answer after sending (the request may have been processed)" if ambiguous else "could not connect"
    return TransientProviderError(f"{type(exc).__name__}: {what}", where=where, request=request, ambiguous=ambiguous,
                                  hint="check RENDER_API_URL and the network")
