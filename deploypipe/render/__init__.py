"""The Render API client and its typed values: the only package in deploypipe that knows Render's URLs and JSON.

    client.py   RenderClient: requests, pagination, error mapping, every operation deploypipe uses
    errors.py   HTTP answers and transport failures -> deploypipe.errors (Render's own words kept)
    retry.py    RetryPolicy, tenacity strategies, the rate-limit throttle
    once.py     at-most-once deploy triggers and rollbacks
    waiting.py  wait_for_deploy, DeployTimeout, failure reasons from service events
    models.py   Service, Deploy, DeployStatus, Job, ServiceEvent, Postgres, ...
"""

from deploypipe.render.client import DEFAULT_API_URL, RenderClient
from deploypipe.render.models import (
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
from deploypipe.render.retry import RetryPolicy
from deploypipe.render.waiting import DeployTimeout

__all__ = [
    "DEFAULT_API_URL",
    "Deploy",
    "DeployStatus",
    "DeployTimeout",
    "Job",
    "Postgres",
    "PostgresConnectionInfo",
    "PostgresExport",
    "RecoveryInfo",
    "RenderClient",
    "RetryPolicy",
    "Service",
    "ServiceEvent",
]
