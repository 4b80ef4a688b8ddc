"""The Render API client and its typed values: the only package in deploypipe that knows Render's URLs and JSON.

Modules, lowest first (each imports only modules above it in this list)::

    errors.py         HTTP answers and transport failures -> deploypipe.errors (Render's own words kept)
    retry.py          RetryPolicy, tenacity strategies, the rate-limit throttle
    models.py         Service, Deploy, DeployStatus, Job, CronJobRun, ServiceEvent, Postgres, ...
    api.py            RenderApi: one request, error mapping, retries, cursor pages, with_retry
    deploys.py        list/get/cancel deploys, the live deploy, service events
    observability.py  HTTP request and latency metrics (TimeSeries), logs (LogPage, LogEntry)
    once.py           at-most-once deploy triggers, rollbacks and cron job runs
    postgres.py       Postgres instances: point-in-time recovery (at most once), delete, wait_for_postgres
    waiting.py        wait_for_deploy, DeployTimeout, failure reasons from service events
    history.py        rollback candidates, the default rollback target, failure streaks
    client.py         RenderClient: the facade stages and commands use
"""

from deploypipe.render.api import DEFAULT_API_URL
from deploypipe.render.client import RenderClient
from deploypipe.render.models import (
    CronJobRun,
    Deploy,
    DeployStatus,
    Job,
    Postgres,
    PostgresConnectionInfo,
    PostgresExport,
    RecoveryInfo,
    Service,
    ServiceEvent,
)
from deploypipe.render.observability import LogEntry, LogPage, TimeSeries
from deploypipe.render.postgres import PostgresNotReady
from deploypipe.render.retry import RetryPolicy
from deploypipe.render.waiting import DeployTimeout

__all__ = [
    "CronJobRun",
    "DEFAULT_API_URL",
    "Deploy",
    "DeployStatus",
    "DeployTimeout",
    "Job",
    "LogEntry",
    "LogPage",
    "Postgres",
    "PostgresConnectionInfo",
    "PostgresExport",
    "PostgresNotReady",
    "RecoveryInfo",
    "RenderClient",
    "RetryPolicy",
    "Service",
    "ServiceEvent",
    "TimeSeries",
]
