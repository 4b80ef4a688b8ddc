"""The Render API client: the only code in deploypipe that knows Render's URLs and JSON.

Same code for api.render.com and the local Render: only the base URL
(``RENDER_API_URL``) differs. GETs and PATCHes retry transient failures
(429 honouring Retry-After, 5xx, dropped connections) with tenacity;
non-idempotent POSTs (trigger deploy, rollback) are never blindly retried:
after an ambiguous failure the client looks for the deploy the POST may have
created before it tries again, so a flaky network never yields two deploys.
"""

from __future__ import annotations

import random
import time
from typing import Any, Callable, Iterator, Mapping

import httpx
import structlog
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, stop_before_delay

from deploypipe.errors import AuthenticationError, NotFoundError, ProviderError, RateLimitedError, TransientProviderError
from deploypipe.render.errors import error_for_response, error_for_transport
from deploypipe.render.models import (
    Deploy,
    DeployStatus,
    Job,
    Postgres,
    PostgresConnectionInfo,
    Service,
    ServiceEvent,
)

__all__ = ["DEFAULT_API_URL", "RenderClient"]

DEFAULT_API_URL = "https://api.render.com/v1"
PAGE = 100
log = structlog.get_logger("deploypipe.render")


def _version() -> str:
    from deploypipe import __version__

    return __version__


class RenderClient:
    """Render REST API over an ``httpx.Client`` whose ``base_url`` is the API root."""

    def __init__(self, http: httpx.Client, *, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic, attempts: int = 5, deadline_s: float = 60.0,
                 rng: random.Random | None = None):
        self.http = http
        self.sleep = sleep
        self.clock = clock
        self.attempts = attempts
        self.deadline_s = deadline_s
        self.rng = rng or random.Random()
        self.requests = 0  # requests sent, for benchmarks and tests
        self._remaining: int | None = None
        self._reset_s: float | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic, transport: httpx.BaseTransport | None = None) -> "RenderClient":
        key = env.get("RENDER_API_KEY")
        if not key:
            raise AuthenticationError("RENDER_API_KEY is not set", hint="create an API key in Render's Account "
                                      "Settings and export RENDER_API_KEY (in CI: a secret)")
        http = httpx.Client(
            base_url=env.get("RENDER_API_URL") or DEFAULT_API_URL, transport=transport,
            headers={"Authorization": f"Bearer {key}", "Accept": "application/json",
                     "User-Agent": f"deploypipe/{_version()}"},
            timeout=httpx.Timeout(30.0, connect=5.0),
        )
        return cls(http, sleep=sleep, clock=clock)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> "RenderClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RenderClient(base_url={str(self.http.base_url)!r})"

    # -- transport -----------------------------------------------------------------
    def _throttle(self) -> None:
        """Slow down before Render has to say 429: wait for the window when almost nothing is left."""
        if self._remaining is not None and self._remaining <= 1 and self._reset_s:
            wait = min(self._reset_s, 60.0)
            log.info("render_rate_limit_low", remaining=self._remaining, wait_s=wait)
            self.sleep(wait)
            self._remaining = None

    def _send(self, method: str, path: str, *, resource: str | None = None, **kwargs: Any) -> httpx.Response:
        """One request; returns a 2xx response or raises a mapped ProviderError."""
        self._throttle()
        self.requests += 1
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise error_for_transport(exc) from None
        remaining = response.headers.get("Ratelimit-Remaining")
        reset = response.headers.get("Ratelimit-Reset")
        try:
            self._remaining = int(remaining) if remaining is not None else None
            self._reset_s = float(reset) if reset is not None else None
        except ValueError:
            self._remaining = self._reset_s = None
        if response.is_success:
            return response
        raise error_for_response(response, resource)

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RateLimitedError) and exc.retry_after_s is not None:
            return exc.retry_after_s
        base = min(30.0, 0.5 * 2 ** (state.attempt_number - 1))
        return base + self.rng.uniform(0, base)

    def _retrying(self, what: str) -> Retrying:
        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning("render_retrying", request=what, attempt=state.attempt_number,
                        wait_s=round(state.next_action.sleep if state.next_action else 0, 3), reason=str(exc))

        return Retrying(stop=stop_after_attempt(self.attempts) | stop_before_delay(self.deadline_s), wait=self._wait,
                        retry=retry_if_exception_type(TransientProviderError), sleep=self.sleep, reraise=True,
                        before_sleep=before_sleep)

    def _call(self, method: str, path: str, *, resource: str | None = None, **kwargs: Any) -> Any:
        """An idempotent request (GET/PATCH/PUT) with retries; returns parsed JSON (None for an empty body)."""
        for attempt in self._retrying(f"{method} {path}"):
            with attempt:
                response = self._send(method, path, resource=resource, **kwargs)
        return response.json() if response.content else None

    def _pages(self, path: str, key: str, params: Mapping[str, Any] | None = None,
               max_items: int | None = None) -> Iterator[Mapping[str, Any]]:
        """Cursor pagination over ``[{cursor, <key>}]`` pages: stop on an empty or short page."""
        query = {k: v for k, v in (params or {}).items() if v is not None}
        seen = 0
        cursor = None
        while True:
            limit = PAGE if max_items is None else max(1, min(PAGE, max_items - seen))
            page = self._call("GET", path, params={**query, "limit": limit, **({"cursor": cursor} if cursor else {})})
            for item in page or []:
                yield item[key]
                seen += 1
                if max_items is not None and seen >= max_items:
                    return
            if not page or len(page) < limit:
                return
            cursor = page[-1].get("cursor")
            if not cursor:
                return

    # -- services --------------------------------------------------------------------
    def list_services(self, *, name: str | None = None, type: str | None = None) -> list[Service]:
        params = {"name": name, "type": type, "includePreviews": "false"}
        return [Service.from_json(s) for s in self._pages("/services", "service", params)]

    def get_service(self, service_id: str) -> Service:
        return Service.from_json(self._call("GET", f"/services/{service_id}", resource=f"service {service_id}"))

    def find_service(self, name_or_id: str) -> Service:
        if name_or_id.startswith("srv-"):
            return self.get_service(name_or_id)
        matches = [s for s in self.list_services(name=name_or_id) if s.name == name_or_id]
        if not matches:
            raise NotFoundError(f"no Render service named '{name_or_id}' is visible to this API key",
                                hint="check the service name (or give its srv- id) and RENDER_API_KEY's workspace")
        if len(matches) > 1:
            ids = ", ".join(s.id for s in matches)
            raise ProviderError(f"several services are named '{name_or_id}': {ids}", hint="give the service id instead")
        return matches[0]

    def update_service(self, service_id: str, *, auto_deploy: bool) -> Service:
        body = {"autoDeploy": "yes" if auto_deploy else "no"}
        return Service.from_json(self._call("PATCH", f"/services/{service_id}", json=body, resource=f"service {service_id}"))

    # -- deploys -----------------------------------------------------------------------
    def list_deploys(self, service_id: str, *, status: list[str] | None = None, created_after: str | None = None,
                     max_items: int | None = 20) -> list[Deploy]:
        params = {"status": status, "createdAfter": created_after}
        return [Deploy.from_json(d) for d in self._pages(f"/services/{service_id}/deploys", "deploy", params, max_items)]

    def get_deploy(self, service_id: str, deploy_id: str) -> Deploy:
        data = self._call("GET", f"/services/{service_id}/deploys/{deploy_id}", resource=f"deploy {deploy_id}")
        return Deploy.from_json(data)

    def cancel_deploy(self, service_id: str, deploy_id: str) -> Deploy:
        data = self._call("POST", f"/services/{service_id}/deploys/{deploy_id}/cancel", resource=f"deploy {deploy_id}")
        return Deploy.from_json(data)

    def live_deploy(self, service_id: str) -> Deploy | None:
        found = self.list_deploys(service_id, status=["live"], max_items=1)
        return found[0] if found else None

    def _create_once(self, what: str, path: str, body: Mapping[str, Any], service_id: str,
                     matches: Callable[[Deploy], bool]) -> Deploy:
        """POST that creates a deploy, at most once: ambiguous failures are resolved by looking the deploy up."""
        before = {d.id for d in self.list_deploys(service_id, max_items=20)}

        def created() -> Deploy | None:
            for deploy in self.list_deploys(service_id, max_items=20):
                if deploy.id not in before and matches(deploy):
                    return deploy
            return None

        started = self.clock()
        for attempt in range(1, self.attempts + 1):
            try:
                response = self._send("POST", path, json=dict(body), resource=f"service {service_id}")
            except RateLimitedError as exc:  # refused, nothing was created
                wait = exc.retry_after_s if exc.retry_after_s is not None else 2.0 ** attempt
                log.warning("render_retrying", request=what, attempt=attempt, wait_s=wait, reason=exc.message)
                self.sleep(wait)
                continue
            except TransientProviderError as exc:
                if exc.attrs.get("ambiguous"):
                    log.warning("deploy_trigger_ambiguous", request=what, reason=exc.message)
                    found = self._call_lookup(created)
                    if found is not None:
                        log.info("deploy_found_after_ambiguous_trigger", request=what, deploy_id=found.id)
                        return found
                if attempt == self.attempts or self.clock() - started > self.deadline_s:
                    raise
                wait = min(30.0, 2.0 ** (attempt - 1)) + self.rng.uniform(0, 1)
                log.warning("render_retrying", request=what, attempt=attempt, wait_s=round(wait, 3), reason=exc.message)
                self.sleep(wait)
                continue
            if response.status_code == 202 or not response.content:
                found = self._call_lookup(created)
                if found is None:
                    raise ProviderError(f"{what}: Render answered 202 Queued but no new deploy is listed",
                                        where=f"POST {path}", hint="check the service's deploys in the dashboard")
                log.info("deploy_queued", request=what, deploy_id=found.id)
                return found
            return Deploy.from_json(response.json())
        raise TransientProviderError(f"{what}: no attempt succeeded", where=f"POST {path}")

    def _call_lookup(self, lookup: Callable[[], Deploy | None]) -> Deploy | None:
        """Run a lookup with the idempotent retry policy (a lookup is a GET)."""
        for attempt in self._retrying("deploy lookup"):
            with attempt:
                return lookup()
        return None

    def trigger_deploy(self, service_id: str, *, commit_id: str | None = None, clear_cache: bool = False,
                       image_url: str | None = None) -> Deploy:
        body: dict[str, Any] = {"clearCache": "clear" if clear_cache else "do_not_clear"}
        if commit_id:
            body["commitId"] = commit_id
        if image_url:
            body["imageUrl"] = image_url

        def matches(deploy: Deploy) -> bool:
            return commit_id is None or (deploy.commit_id or "").startswith(commit_id) or commit_id.startswith(deploy.commit_id or "-")

        return self._create_once("trigger deploy", f"/services/{service_id}/deploys", body, service_id, matches)

    def rollback(self, service_id: str, deploy_id: str) -> Deploy:
        return self._create_once("rollback", f"/services/{service_id}/rollback", {"deployId": deploy_id}, service_id,
                                 lambda deploy: deploy.trigger == "rollback")

    def wait_for_deploy(self, service_id: str, deploy_id: str, *, timeout_s: float, poll_s: float = 2.0,
                        max_poll_s: float = 15.0, cancel_on_timeout: bool = False,
                        on_status: Callable[[Deploy], None] | None = None) -> Deploy:
        """Poll until terminal with growing intervals; log each status change once; raise on timeout."""
        from deploypipe.render.waiting import DeployTimeout

        deadline = self.clock() + timeout_s
        interval = poll_s
        last_status = None
        while True:
            deploy = self.get_deploy(service_id, deploy_id)
            if deploy.status != last_status:
                log.info("deploy_status", service_id=service_id, deploy_id=deploy_id, status=deploy.status,
                         previous=last_status)
                last_status = deploy.status
                if on_status:
                    on_status(deploy)
            if deploy.terminal:
                return deploy
            if self.clock() + interval > deadline:
                if cancel_on_timeout and deploy.status in DeployStatus.CANCELLABLE:
                    self.cancel_deploy(service_id, deploy_id)
                raise DeployTimeout(f"deploy {deploy_id} still {deploy.status} after {timeout_s:g}s"
                                    + ("; cancelled" if cancel_on_timeout else ""),
                                    where=f"service {service_id}", deploy=deploy)
            self.sleep(interval)
            interval = min(max_poll_s, interval * 1.5)

    def list_events(self, service_id: str, *, types: list[str] | None = None, max_items: int = 50) -> list[ServiceEvent]:
        return [ServiceEvent.from_json(e) for e in
                self._pages(f"/services/{service_id}/events", "event", {"type": types}, max_items)]

    def deploy_failure_reason(self, service_id: str, deploy_id: str) -> str:
        """Why a deploy failed, in words, from the service's events."""
        from deploypipe.render.waiting import describe_failure

        events = self.list_events(service_id, types=["deploy_ended", "build_ended", "pre_deploy_ended", "server_failed"])
        return describe_failure(deploy_id, events)

    # -- jobs --------------------------------------------------------------------------
    def create_job(self, service_id: str, start_command: str) -> Job:
        response = self._send("POST", f"/services/{service_id}/jobs", json={"startCommand": start_command},
                              resource=f"service {service_id}")
        return Job.from_json(response.json())

    def get_job(self, service_id: str, job_id: str) -> Job:
        return Job.from_json(self._call("GET", f"/services/{service_id}/jobs/{job_id}", resource=f"job {job_id}"))

    def list_jobs(self, service_id: str, *, max_items: int = 20) -> list[Job]:
        return [Job.from_json(j) for j in self._pages(f"/services/{service_id}/jobs", "job", None, max_items)]

    def cancel_job(self, service_id: str, job_id: str) -> Job:
        return Job.from_json(self._call("POST", f"/services/{service_id}/jobs/{job_id}/cancel", resource=f"job {job_id}"))

    # -- postgres ----------------------------------------------------------------------
    def list_postgres(self, *, name: str | None = None) -> list[Postgres]:
        return [Postgres.from_json(p) for p in self._pages("/postgres", "postgres", {"name": name})]

    def get_postgres(self, postgres_id: str) -> Postgres:
        return Postgres.from_json(self._call("GET", f"/postgres/{postgres_id}", resource=f"postgres {postgres_id}"))

    def find_postgres(self, name_or_id: str) -> Postgres:
        if name_or_id.startswith("dpg-"):
            return self.get_postgres(name_or_id)
        for item in self.list_postgres(name=name_or_id):
            if item.name == name_or_id:
                return item
        raise NotFoundError(f"no Render Postgres named '{name_or_id}'", hint="check targets.databases.*.render_postgres")

    def postgres_connection_info(self, postgres_id: str) -> PostgresConnectionInfo:
        data = self._call("GET", f"/postgres/{postgres_id}/connection-info", resource=f"postgres {postgres_id}")
        return PostgresConnectionInfo.from_json(data)

    def create_postgres_export(self, postgres_id: str) -> None:
        self._send("POST", f"/postgres/{postgres_id}/export", resource=f"postgres {postgres_id}")

    def list_postgres_exports(self, postgres_id: str) -> list[Mapping[str, Any]]:
        return list(self._call("GET", f"/postgres/{postgres_id}/export", resource=f"postgres {postgres_id}") or [])

    def postgres_recovery_info(self, postgres_id: str) -> Mapping[str, Any]:
        return self._call("GET", f"/postgres/{postgres_id}/recovery", resource=f"postgres {postgres_id}")
