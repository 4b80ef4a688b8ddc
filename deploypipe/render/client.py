"""RenderClient: the one object stages and commands use to talk to Render (a facade over this package's modules).

The same code talks to api.render.com and to the local Render; only the base
URL (``RENDER_API_URL``) differs. GETs, PATCHes and cancels retry transient
failures (``retry.py``). Non-idempotent POSTs are never retried blindly:
deploy triggers, rollbacks and cron job runs go through ``once.py`` (at most
one deploy or run per call), point-in-time recoveries through ``postgres.py`` (at most one new
database per call), other creations retry only when the request was
certainly not sent. Requests, error mapping and pagination live in
``api.py``; deploy reads in ``deploys.py``; waiting in ``waiting.py``;
metrics and logs in ``observability.py``; Postgres instances in ``postgres.py``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Callable, Literal, Sequence

from deploypipe.errors import NotFoundError, ProviderError
from deploypipe.render import deploys, observability, once, postgres, waiting
from deploypipe.render.api import DEFAULT_API_URL, PAGE_LIMIT, RenderApi, iso_time, not_sent, read_json
from deploypipe.render.models import (
    CronJobRun,
    Deploy,
    Job,
    Postgres,
    PostgresConnectionInfo,
    PostgresExport,
    RecoveryInfo,
    Service,
    ServiceEvent,
)
from deploypipe.render.observability import LogPage, TimeSeries

__all__ = ["DEFAULT_API_URL", "PAGE_LIMIT", "RenderClient", "iso_time", "not_sent"]

TimeLike = datetime | float | str


class RenderClient(RenderApi):
    """Render REST API over an ``httpx.Client`` whose ``base_url`` is the API root (``.../v1``).

    ``RenderClient(http, sleep=, clock=, retry=, wall_clock=)`` or ``RenderClient.from_env(env, sleep=, clock=)``;
    ``with_retry(policy)`` gives a twin sharing the ``httpx.Client`` (see ``api.RenderApi``).
    """

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
                     created_after: TimeLike | None = None, limit: int | None = None,
                     max_items: int | None = None) -> list[Deploy]:
        """Deploys newest first; ``limit`` is the page size, ``max_items`` caps the total."""
        return deploys.list_deploys(self, service_id, status=status, created_after=created_after, limit=limit,
                                    max_items=max_items)

    def get_deploy(self, service_id: str, deploy_id: str) -> Deploy:
        return deploys.get_deploy(self, service_id, deploy_id)

    def live_deploy(self, service_id: str) -> Deploy | None:
        return deploys.live_deploy(self, service_id)

    def cancel_deploy(self, service_id: str, deploy_id: str) -> Deploy:
        return deploys.cancel_deploy(self, service_id, deploy_id)

    def trigger_deploy(self, service_id: str, commit_id: str | None = None, clear_cache: bool = False,
                       image_url: str | None = None, requested_at: float | None = None) -> Deploy:
        """Start a deploy; at most one is created however the network fails, and with ``requested_at`` (when an
        interrupted process asked for it, wall clock) however the process failed (see ``once.py``)."""
        return once.trigger_deploy_once(self, service_id, commit_id=commit_id, clear_cache=clear_cache,
                                        image_url=image_url, requested_at=requested_at)

    def rollback(self, service_id: str, deploy_id: str, requested_at: float | None = None) -> Deploy:
        """Roll back to ``deploy_id``'s build; at most one rollback deploy is created (``requested_at``: as for
        ``trigger_deploy``)."""
        return once.rollback_once(self, service_id, deploy_id, requested_at=requested_at)

    def wait_for_deploy(self, service_id: str, deploy_id: str, *, timeout_s: float, poll_s: float = 2.0,
                        max_poll_s: float = 15.0, on_status: Callable[[Deploy], None] | None = None,
                        cancel_on_timeout: bool = False) -> Deploy:
        """Poll until terminal (see ``waiting.wait_for_deploy``)."""
        return waiting.wait_for_deploy(self, service_id, deploy_id, timeout_s=timeout_s, poll_s=poll_s,
                                       max_poll_s=max_poll_s, on_status=on_status,
                                       cancel_on_timeout=cancel_on_timeout)

    def deploy_failure_reason(self, service_id: str, deploy_id: str) -> str:
        """Why a deploy failed, in words, from the service's events."""
        return waiting.deploy_failure_reason(self, service_id, deploy_id)

    def list_events(self, service_id: str, *, types: list[str] | None = None,
                    start_time: TimeLike | None = None, max_items: int | None = 100) -> list[ServiceEvent]:
        return deploys.list_events(self, service_id, types=types, start_time=start_time, max_items=max_items)

    # -- metrics and logs --------------------------------------------------------------------------
    def http_request_metrics(self, resource: str, *, start: TimeLike, end: TimeLike, resolution_s: float,
                             aggregate_by: Literal["statusCode", "host"] | None = "statusCode",
                             path: str | Sequence[str] | None = None,
                             host: str | Sequence[str] | None = None) -> list[TimeSeries]:
        """Request counts per bucket, one series per status code (see ``observability.http_request_metrics``)."""
        return observability.http_request_metrics(self, resource, start=start, end=end, resolution_s=resolution_s,
                                                  aggregate_by=aggregate_by, path=path, host=host)

    def http_latency_metrics(self, resource: str, *, start: TimeLike, end: TimeLike, resolution_s: float,
                             quantile: float | Sequence[float], path: str | Sequence[str] | None = None,
                             host: str | Sequence[str] | None = None) -> list[TimeSeries]:
        """Latency quantiles in ms per bucket (see ``observability.http_latency_metrics``)."""
        return observability.http_latency_metrics(self, resource, start=start, end=end, resolution_s=resolution_s,
                                                  quantile=quantile, path=path, host=host)

    def list_logs(self, owner_id: str, *, resources: str | Sequence[str], start: TimeLike, end: TimeLike,
                  types: Sequence[str] | None = None, status_codes: Sequence[str | int] | None = None,
                  paths: Sequence[str] | None = None, methods: Sequence[str] | None = None,
                  instances: Sequence[str] | None = None, levels: Sequence[str] | None = None,
                  hosts: Sequence[str] | None = None, text: str | Sequence[str] | None = None,
                  direction: Literal["backward", "forward"] = "backward", limit: int = 100) -> LogPage:
        """One page of logs (see ``observability.list_logs``); page with ``next_start_time``/``next_end_time``."""
        return observability.list_logs(self, owner_id, resources=resources, start=start, end=end, types=types,
                                       status_codes=status_codes, paths=paths, methods=methods,
                                       instances=instances, levels=levels, hosts=hosts, text=text,
                                       direction=direction, limit=limit)

    # -- cron jobs -------------------------------------------------------------------------------
    def trigger_cron_run(self, cron_job_id: str, *, not_before: datetime | None = None,
                         requested_at: float | None = None) -> CronJobRun:
        """Start a run of the cron job now (Render cancels any active run); at most one run is started per call,
        however the network fails (see ``once.py``); ``not_before`` bounds the lookup after an ambiguous failure;
        ``requested_at`` as for ``trigger_deploy``."""
        return once.trigger_cron_run_once(self, cron_job_id, not_before=not_before, requested_at=requested_at)

    def cancel_cron_run(self, cron_job_id: str) -> None:
        """Cancel the cron job's active run, if any."""
        self.call("DELETE", f"/cron-jobs/{cron_job_id}/runs", resource=f"cron job {cron_job_id}")

    # -- jobs ------------------------------------------------------------------------------------
    def create_job(self, service_id: str, start_command: str, *, plan_id: str | None = None) -> Job:
        body = {"startCommand": start_command, **({"planId": plan_id} if plan_id else {})}
        response = self.post_unsent_retry(f"/services/{service_id}/jobs", json=body, resource=f"service {service_id}")
        return Job.from_json(read_json(response))

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
        return postgres.list_postgres(self, name=name)

    def get_postgres(self, postgres_id: str) -> Postgres:
        return postgres.get_postgres(self, postgres_id)

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

    def recover_postgres(self, postgres_id: str, *, restore_time: TimeLike, restore_name: str,
                         plan: str | None = None, environment_id: str | None = None,
                         datadog_api_key: str | None = None, datadog_site: str | None = None) -> Postgres:
        """Point-in-time recovery into a NEW database named ``restore_name``; at most one is created per call
        (see ``postgres.recover_postgres``). Poll ``wait_for_postgres`` until it is available."""
        return postgres.recover_postgres(self, postgres_id, restore_time=restore_time, restore_name=restore_name,
                                         plan=plan, environment_id=environment_id,
                                         datadog_api_key=datadog_api_key, datadog_site=datadog_site)

    def delete_postgres(self, postgres_id: str, *, missing_ok: bool = False) -> bool:
        """Delete a Postgres instance and all its data; False when it was already gone (see ``postgres.py``)."""
        return postgres.delete_postgres(self, postgres_id, missing_ok=missing_ok)

    def wait_for_postgres(self, postgres_id: str, *, timeout_s: float, poll_s: float = 5.0, max_poll_s: float = 30.0,
                          on_status: Callable[[Postgres], None] | None = None) -> Postgres:
        """Poll until ``available``; PostgresNotReady when it fails or times out (``postgres.wait_for_postgres``)."""
        return postgres.wait_for_postgres(self, postgres_id, timeout_s=timeout_s, poll_s=poll_s,
                                          max_poll_s=max_poll_s, on_status=on_status)
