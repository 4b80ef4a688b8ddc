"""The Render API transport: one request at a time, Render's answers mapped to errors, retries, cursor pages.

``RenderApi`` owns the ``httpx.Client`` (its ``base_url`` is the API root,
``.../v1``), the injected ``sleep``/``clock``/``wall_clock`` and the retry
policy. ``send`` is one request without retry; ``call`` retries idempotent
requests on transient failures; ``post_unsent_retry`` repeats a
non-idempotent POST only when Render surely did not process it; ``pages``
walks Render's cursor pagination. Everything above (deploys, at-most-once
triggers, waiting, history, metrics and logs, the RenderClient facade) is
written in terms of these.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Callable, Iterator, Mapping, TypeVar

import httpx
from tenacity import Retrying

from deploypipe.errors import AuthenticationError, ProviderError, RateLimitedError, TransientProviderError
from deploypipe.render.errors import error_for_response, error_for_transport
from deploypipe.render.retry import RateLimitThrottle, RetryPolicy, build_retrying

__all__ = ["DEFAULT_API_URL", "PAGE_LIMIT", "RenderApi", "iso_time", "not_sent", "read_json"]

DEFAULT_API_URL = "https://api.render.com/v1"
PAGE_LIMIT = 100

ApiT = TypeVar("ApiT", bound="RenderApi")


def _user_agent() -> str:
    try:
        return f"deploypipe/{version('deploypipe')}"
    except PackageNotFoundError:  # running from a checkout that is not installed
        return "deploypipe/0+unknown"


def iso_time(value: datetime | float | str) -> str:
    """An ISO 8601 UTC timestamp (``...Z``) from a datetime, epoch seconds or an ISO string."""
    if isinstance(value, str):
        return value
    if not isinstance(value, datetime):
        value = datetime.fromtimestamp(value, UTC)
    elif value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def not_sent(exc: BaseException) -> bool:
    """A failure after which a non-idempotent POST may be repeated: Render surely did not process it."""
    return isinstance(exc, RateLimitedError) or (isinstance(exc, TransientProviderError) and not exc.sent)


def read_json(response: httpx.Response) -> Any:
    """The parsed JSON body of a successful answer (None when empty); a body that is not JSON is an error."""
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        raise ProviderError(f"{response.status_code} with a body that is not JSON",
                            where=f"{response.request.method} {response.request.url.path}",
                            status_code=response.status_code, request=response.request, response=response,
                            hint="check RENDER_API_URL points at the Render API (…/v1)") from None


class RenderApi:
    """Requests to the Render REST API over an ``httpx.Client`` whose ``base_url`` is the API root (``.../v1``).

    ``sleep``/``clock`` pace retries and polling (tests inject a fake clock);
    ``wall_clock`` (epoch seconds) dates the at-most-once deploy lookups.
    """

    def __init__(self, http: httpx.Client, *, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic, retry: RetryPolicy | None = None,
                 wall_clock: Callable[[], float] = time.time):
        self.http = http
        self.sleep = sleep
        self.clock = clock
        self.wall_clock = wall_clock
        self.retry = retry or RetryPolicy()
        self.throttle = RateLimitThrottle(self.retry, sleep=sleep, clock=clock, wall_clock=wall_clock)

    @classmethod
    def from_env(cls: type[ApiT], env: Mapping[str, str], *, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic, retry: RetryPolicy | None = None,
                 transport: httpx.BaseTransport | None = None) -> ApiT:
        """A client for ``RENDER_API_URL`` (default api.render.com) authenticated with ``RENDER_API_KEY``."""
        key = (env.get("RENDER_API_KEY") or "").strip()
        if not key:
            raise AuthenticationError("RENDER_API_KEY is not set", where="Render API client",
                                      hint="set RENDER_API_KEY (create a key under Render's Account Settings; "
                                           "in CI store it as a secret)")
        http = httpx.Client(
            base_url=(env.get("RENDER_API_URL") or DEFAULT_API_URL).rstrip("/"), transport=transport,
            headers={"Authorization": f"Bearer {key}", "Accept": "application/json", "User-Agent": _user_agent()},
            timeout=httpx.Timeout(30.0, connect=5.0), follow_redirects=False,
        )
        return cls(http, sleep=sleep, clock=clock, retry=retry)

    def with_retry(self: ApiT, retry: RetryPolicy) -> ApiT:
        """The same client (same ``httpx.Client``, clocks and rate-limit throttle) with another retry policy.

        ``client.with_retry(RetryPolicy(attempts=1))`` makes calls that are never retried internally, for a
        caller that paces its own requests. Closing either closes the shared ``httpx.Client``.
        """
        twin = type(self)(self.http, sleep=self.sleep, clock=self.clock, retry=retry, wall_clock=self.wall_clock)
        twin.throttle = self.throttle
        return twin

    def close(self) -> None:
        self.http.close()

    def __enter__(self: ApiT) -> ApiT:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={str(self.http.base_url)!r})"

    def send(self, method: str, path: str, *, resource: str | None = None, **kwargs: Any) -> httpx.Response:
        """One request, no retry: a 2xx response, or a mapped ProviderError (``resource`` names a 404's target)."""
        bucket = self.throttle.bucket(method, path)
        self.throttle.before(bucket)
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.RequestError as exc:
            raise error_for_transport(exc) from exc
        self.throttle.after(bucket, response)
        if response.is_success:
            return response
        raise error_for_response(response, resource, self.wall_clock)

    def retrying(self, what: str, retry_if: Callable[[BaseException], bool] | None = None) -> Retrying:
        """A tenacity ``Retrying`` bound to this client's policy, sleep and clock (transient errors by default)."""
        if retry_if is None:
            return build_retrying(self.retry, sleep=self.sleep, clock=self.clock, what=what)
        return build_retrying(self.retry, sleep=self.sleep, clock=self.clock, what=what, retry_if=retry_if)

    def call(self, method: str, path: str, *, resource: str | None = None, **kwargs: Any) -> Any:
        """An idempotent request (GET, PATCH, cancel) with retries; returns parsed JSON (None when empty)."""
        for attempt in self.retrying(f"{method} {path}"):
            with attempt:
                response = self.send(method, path, resource=resource, **kwargs)
        return read_json(response)

    def post_unsent_retry(self, path: str, *, resource: str | None = None, **kwargs: Any) -> httpx.Response:
        """A non-idempotent POST retried only when Render surely did not process it (refused or never sent)."""
        for attempt in self.retrying(f"POST {path}", retry_if=not_sent):
            with attempt:
                response = self.send("POST", path, resource=resource, **kwargs)
        return response

    def pages(self, path: str, key: str, params: Mapping[str, Any] | None = None, *, limit: int | None = None,
              max_items: int | None = None) -> Iterator[Mapping[str, Any]]:
        """Cursor pagination over ``[{cursor, <key>}]``: stop on an empty or short page, or at ``max_items``."""
        query = {k: v for k, v in (params or {}).items() if v not in (None, [], ())}
        size = max(1, min(PAGE_LIMIT, limit or PAGE_LIMIT))
        seen, cursor = 0, None
        while True:
            want = size if max_items is None else max(1, min(size, max_items - seen))
            page = self.call("GET", path, params={**query, "limit": want, **({"cursor": cursor} if cursor else {})})
            if not isinstance(page, list):
                raise ProviderError(f"expected a JSON list of {key} items, got {type(page).__name__}",
                                    where=f"GET {path}")
            for item in page:
                value = item.get(key) if isinstance(item, Mapping) else None
                if value is None:
                    continue
                yield value
                seen += 1
                if max_items is not None and seen >= max_items:
                    return
            cursor = page[-1].get("cursor") if page else None
            if len(page) < want or not cursor:
                return
