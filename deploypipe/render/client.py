"""The Render API client: the only code in deploypipe that knows Render's URLs and JSON.

The same code talks to api.render.com and to the local Render; only the base
URL (``RENDER_API_URL``) differs. GETs, PATCHes and cancels retry transient
failures (see ``retry.py``). Non-idempotent POSTs are never retried blindly:
deploy triggers and rollbacks go through ``once.py`` (at most one deploy per
call), other creations retry only when the request was certainly not sent.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Callable, Iterator, Mapping

import httpx
import structlog

from deploypipe.errors import (
    AuthenticationError,
    NotFoundError,
    ProviderError,
    RateLimitedError,
    TransientProviderError,
)
from deploypipe.render.errors import error_for_response, error_for_transport
from deploypipe.render.models import (
    Deploy,
    Job,
    Postgres,
    PostgresConnectionInfo,
    PostgresExport,
    RecoveryInfo,
    Service,
    ServiceEvent,
)
from deploypipe.render.retry import RateLimitThrottle, RetryPolicy, build_retrying

__all__ = ["DEFAULT_API_URL", "PAGE_LIMIT", "RenderClient", "iso_time", "not_sent"]

DEFAULT_API_URL = "https://api.render.com/v1"
PAGE_LIMIT = 100
log = structlog.get_logger("deploypipe.render")


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


class RenderClient:
    """Render REST API over an ``httpx.Client`` whose ``base_url`` is the API root (``.../v1``).

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
    def from_env(cls, env: Mapping[str, str], *, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic, retry: RetryPolicy | None = None,
                 transport: httpx.BaseTransport | None = None) -> RenderClient:
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

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> RenderClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RenderClient(base_url={str(self.http.base_url)!r})"

    # -- transport ---------------------------------------------------------------------------
    def send(self, method: str, path: str, *, resource: str | None = None, **kwargs: Any) -> httpx.Response:
        """One request, no retry: a 2xx response, or a mapped ProviderError."""
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

    def retrying(self, what: str, retry_if: Callable[[BaseException], bool] | None = None) -> Any:
        """A tenacity ``Retrying`` bound to this client's policy, sleep and clock (transient errors by default)."""
        extra = {"retry_if": retry_if} if retry_if is not None else {}
        return build_retrying(self.retry, sleep=self.sleep, clock=self.clock, what=what, **extra)

    @staticmethod
    def _json(response: httpx.Response) -> Any:
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise ProviderError(f"{response.status_code} with a body that is not JSON",
                                where=f"{response.request.method} {response.request.url.path}",
                                status_code=response.status_code, request=response.request, response=response,
                                hint="check RENDER_API_URL points at the Render API (…/v1)") from None

    def call(self, method: str, path: str, *, resource: str | None = None, **kwargs: Any) -> Any:
        """An idempotent request (GET, PATCH, cancel) with retries; returns parsed JSON (None when empty)."""
        for attempt in self.retrying(f"{method} {path}"):
            with attempt:
                response = self.send(method, path, resource=resource, **kwargs)
        return self._json(response)

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

    # -- services --------------------------------------------------------------------------------
    def list_services(self, *, name: str | list[str] | None = None, type: str | list[str] | None = None,
                      max_items: int | None = None) -> list[Service]:
        params = {"name": name, "type": type, "includePreviews": "false"}
        return [Service.from_json(s) for s in self.pages("/services", "service", params, max_items=max_items)]

    def get_service(self, service_id: str) -> Service:
        return Service.from_json(self.call("GET", f"/services/{service_id}", resource=f"service {service_id}"))

    def find_service(self, name_or_id: str) -> Service:
        """By id when it starts with ``srv-``, else by exact name (error when none or several match)."""
        if name_or_id.startswith("srv-"):
            return self.get_service(name_or_id)
        matches = [s for s in self.list_services(name=name_or_id) if s.name == name_or_id]
        if not matches:
            raise NotFoundError(f"no Render service named '{name_or_id}' is visible to this API key",
                                where="find service", hint="check the service name (or give its srv- id) and that "
                                "RENDER_API_KEY belongs to the service's workspace")
        if len(matches) > 1:
            raise ProviderError(f"{len(matches)} services are named '{name_or_id}': "
                                f"{', '.join(s.id for s in matches)}", where="find service",
                                hint="give the service's id (srv-...) in the pipeline targets")
        return matches[0]

    def update_service(self, service_id: str, *, auto_deploy: bool) -> Service:
        body = {"autoDeploy": "yes" if auto_deploy else "no"}
        data = self.call("PATCH", f"/services/{service_id}", json=body, resource=f"service {service_id}")
        return Service.from_json(data)

    # -- deploys ---------------------------------------------------------------------------------
    def list_deploys(self, service_id: str, *, status: list[str] | None = None,
                     created_after: datetime | float | str | None = None, limit: int | None = None,
                     max_items: int | None = None) -> list[Deploy]:
        """Deploys newest first; ``limit`` is the page size, ``max_items`` caps the total."""
        params = {"status": status, "createdAfter": iso_time(created_after) if created_after is not None else None}
        return [Deploy.from_json(d) for d in
                self.pages(f"/services/{service_id}/deploys", "deploy", params, limit=limit, max_items=max_items)]

    def get_deploy(self, service_id: str, deploy_id: str) -> Deploy:
        data = self.call("GET", f"/services/{service_id}/deploys/{deploy_id}", resource=f"deploy {deploy_id}")
        return Deploy.from_json(data)

    def live_deploy(self, service_id: str) -> Deploy | None:
        found = self.list_deploys(service_id, status=["live"], max_items=1)
        return found[0] if found else None

    def cancel_deploy(self, service_id: str, deploy_id: str) -> Deploy:
        data = self.call("POST", f"/services/{service_id}/deploys/{deploy_id}/cancel", resource=f"deploy {deploy_id}")
        return Deploy.from_json(data)

    def trigger_deploy(self, service_id: str, commit_id: str | None = None, clear_cache: bool = False,
                       image_url: str | None = None) -> Deploy:
        """Start a deploy; at most one is created however the network fails (see ``once.py``)."""
        from deploypipe.render.once import trigger_deploy_once

        return trigger_deploy_once(self, service_id, commit_id=commit_id, clear_cache=clear_cache, image_url=image_url)

    def rollback(self, service_id: str, deploy_id: str) -> Deploy:
        """Roll back to ``deploy_id``'s build; at most one rollback deploy is created."""
        from deploypipe.render.once import rollback_once

        return rollback_once(self, service_id, deploy_id)

    def wait_for_deploy(self, service_id: str, deploy_id: str, *, timeout_s: float, poll_s: float = 2.0,
                        max_poll_s: float = 15.0, on_status: Callable[[Deploy], None] | None = None,
                        cancel_on_timeout: bool = False) -> Deploy:
        """Poll until terminal (see ``waiting.wait_for_deploy``)."""
        from deploypipe.render.waiting import wait_for_deploy

        return wait_for_deploy(self, service_id, deploy_id, timeout_s=timeout_s, poll_s=poll_s, max_poll_s=max_poll_s,
                               on_status=on_status, cancel_on_timeout=cancel_on_timeout)

    def deploy_failure_reason(self, service_id: str, deploy_id: str) -> str:
        """Why a deploy failed, in words, from the service's events."""
        from deploypipe.render.waiting import deploy_failure_reason

        return deploy_failure_reason(self, service_id, deploy_id)

    def list_events(self, service_id: str, *, types: list[str] | None = None,
                    start_time: datetime | float | str | None = None, max_items: int | None = 100) -> list[ServiceEvent]:
        params = {"type": types, "startTime": iso_time(start_time) if start_time is not None else None}
        return [ServiceEvent.from_json(e) for e in
                self.pages(f"/services/{service_id}/events", "event", params, max_items=max_items)]

    # -- jobs ------------------------------------------------------------------------------------
    def create_job(self, service_id: str, start_command: str, *, plan_id: str | None = None) -> Job:
        body = {"startCommand": start_command, **({"planId": plan_id} if plan_id else {})}
        response = self.post_unsent_retry(f"/services/{service_id}/jobs", json=body, resource=f"service {service_id}")
        return Job.from_json(self._json(response))

    def get_job(self, service_id: str, job_id: str) -> Job:
        return Job.from_json(self.call("GET", f"/services/{service_id}/jobs/{job_id}", resource=f"job {job_id}"))

    def list_jobs(self, service_id: str, *, status: list[str] | None = None, max_items: int | None = 20) -> list[Job]:
        return [Job.from_json(j) for j in
                self.pages(f"/services/{service_id}/jobs", "job", {"status": status}, max_items=max_items)]

    def cancel_job(self, service_id: str, job_id: str) -> Job:
        data = self.call("POST", f"/services/{service_id}/jobs/{job_id}/cancel", resource=f"job {job_id}")
        return Job.from_json(data)

    # -- postgres --------------------------------------------------------------------------------
    def list_postgres(self, *, name: str | list[str] | None = None) -> list[Postgres]:
        return [Postgres.from_json(p) for p in self.pages("/postgres", "postgres", {"name": name})]

    def get_postgres(self, postgres_id: str) -> Postgres:
        return Postgres.from_json(self.call("GET", f"/postgres/{postgres_id}", resource=f"postgres {postgres_id}"))

    def find_postgres(self, name_or_id: str) -> Postgres:
        """By id when it starts with ``dpg-``, else by exact name (error when none or several match)."""
        if name_or_id.startswith("dpg-"):
            return self.get_postgres(name_or_id)
        matches = [p for p in self.list_postgres(name=name_or_id) if p.name == name_or_id]
        if not matches:
            raise NotFoundError(f"no Render Postgres named '{name_or_id}' is visible to this API key",
                                where="find postgres", hint="check targets.databases.<key>.render_postgres")
        if len(matches) > 1:
            raise ProviderError(f"{len(matches)} Render Postgres are named '{name_or_id}': "
                                f"{', '.join(p.id for p in matches)}", where="find postgres",
                                hint="give the database's id (dpg-...) instead")
        return matches[0]

    def postgres_connection_info(self, postgres_id: str) -> PostgresConnectionInfo:
        data = self.call("GET", f"/postgres/{postgres_id}/connection-info", resource=f"postgres {postgres_id}")
        return PostgresConnectionInfo.from_json(data)

    def create_postgres_export(self, postgres_id: str) -> None:
        """Start a logical export (Render answers 202 without an id: watch ``list_postgres_exports``)."""
        self.post_unsent_retry(f"/postgres/{postgres_id}/export", resource=f"postgres {postgres_id}")

    def list_postgres_exports(self, postgres_id: str) -> list[PostgresExport]:
        data = self.call("GET", f"/postgres/{postgres_id}/export", resource=f"postgres {postgres_id}")
        return [PostgresExport.from_json(e) for e in data or []]

    def postgres_recovery_info(self, postgres_id: str) -> RecoveryInfo:
        data = self.call("GET", f"/postgres/{postgres_id}/recovery", resource=f"postgres {postgres_id}")
        return RecoveryInfo.from_json(data or {})
