"""At-most-once creation through Render's API: a flaky network never produces two deploys or two databases.

A POST that creates a deploy is repeated only when Render surely did not
process it (connection refused, 429). After an *ambiguous* failure (read
timeout after sending, dropped connection, 5xx) the client first looks for the
deploy the lost request may have created: deploys created since a wall-clock
timestamp taken just before the first POST (minus ``lookup_skew_s`` for clock
skew) that match the commit (trigger) or ``trigger == "rollback"`` and the
target's commit (rollback). It POSTs again only when none is found, and looks
again after the back-off before that next POST. A ``202`` without a body is
answered the same way: the queued deploy is looked up. :func:`create_once` is
that mechanism for anything Render creates; point-in-time recoveries use it too
(``render/postgres.py``: the new database is found again by its restoreName),
and so do cron job runs: a second POST would cancel the first run and start
another, so after an ambiguous failure the run is found again as the newest
``cron_job_run_started`` event since the POST (and not before ``not_before``).

``requested_at`` carries the same guarantee across processes: a stage journals
when it asks Render for a deploy, a rollback or a cron run *before* the POST,
and a resumed run passes that time back. The request is then ambiguous from the
start: what it may have created since is looked up first, and POSTed only when
nothing is found (a process killed between the POST and journalling Render's
answer never creates a second one).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Callable, TypeVar

import structlog

from deploypipe.core.commits import same_commit
from deploypipe.errors import ProviderError, TransientProviderError
from deploypipe.render.api import RenderApi, not_sent, read_json
from deploypipe.render.deploys import get_deploy, list_deploys, list_events
from deploypipe.render.models import CronJobRun, Deploy

__all__ = ["create_once", "rollback_once", "trigger_cron_run_once", "trigger_deploy_once"]

log = structlog.get_logger("deploypipe.render")

T = TypeVar("T")


def create_once(api: RenderApi, *, what: str, path: str, body: dict[str, Any], resource: str,
                lookup: Callable[[], T | None], parse: Callable[[Any], T | None], names: tuple[str, str, str],
                describe: Callable[[T], dict[str, Any]], context: dict[str, Any], missing_hint: str,
                resumed: bool = False) -> T:
    """POST ``body`` to ``path`` so that Render creates at most one thing (see the module docstring).

    ``lookup()`` finds what a lost request may have created; ``parse(json)`` reads the answer (None: no id in it);
    ``names`` are the log events for an ambiguous failure, a find after one, and an answer without an id that a
    lookup resolved; ``describe(found)`` and ``context`` are their fields. ``resumed``: an earlier process may have
    sent this request already, so ``lookup()`` comes before the first POST.
    """
    ambiguous_event, found_event, queued_event = names
    ambiguous = resumed

    def found_after_ambiguity() -> T | None:
        found = lookup()
        if found is not None:
            log.info(found_event, **context, **describe(found))
        return found

    def attempt_once() -> T:
        nonlocal ambiguous
        if ambiguous and (found := found_after_ambiguity()) is not None:
            return found
        try:
            response = api.send("POST", path, json=body, resource=resource)
        except TransientProviderError as exc:
            if not_sent(exc):
                raise
            ambiguous = True
            log.warning(ambiguous_event, **context, reason=exc.message)
            if (found := found_after_ambiguity()) is not None:
                return found
            raise
        created = parse(read_json(response))
        if created is not None:
            return created
        found = lookup()
        if found is None:
            raise ProviderError(f"{what}: Render answered {response.status_code} without an id, and nothing new "
                                f"is listed", where=f"POST {response.request.url.path}",
                                status_code=response.status_code, hint=missing_hint)
        log.info(queued_event, **context, **describe(found))
        return found

    for attempt in api.retrying(what):
        with attempt:
            result = attempt_once()
    return result


def _since(api: RenderApi, requested_at: float | None) -> float:
    """Where a lookup starts: just before this request was first asked for (now, or ``requested_at``)."""
    return (api.wall_clock() if requested_at is None else requested_at) - api.retry.lookup_skew_s


def _create_deploy_once(api: RenderApi, *, what: str, path: str, body: dict[str, Any], service_id: str,
                        matches: Callable[[Deploy], bool], requested_at: float | None) -> Deploy:
    since = _since(api, requested_at)

    def lookup() -> Deploy | None:
        for deploy in list_deploys(api, service_id, created_after=since, max_items=20):  # newest first
            if matches(deploy):
                return deploy
        return None

    return create_once(api, what=what, path=path, body=body, resource=f"service {service_id}", lookup=lookup,
                       parse=lambda data: Deploy.from_json(data) if isinstance(data, dict) and data.get("id")
                       else None,
                       names=("deploy_trigger_ambiguous", "deploy_found_after_ambiguous_trigger", "deploy_queued"),
                       describe=lambda deploy: {"deploy_id": deploy.id, "status": deploy.status},
                       context={"request": what, "service_id": service_id},
                       missing_hint="look at the service's deploys in the Render dashboard before retrying",
                       resumed=requested_at is not None)


def trigger_deploy_once(api: RenderApi, service_id: str, *, commit_id: str | None = None,
                        clear_cache: bool = False, image_url: str | None = None,
                        requested_at: float | None = None) -> Deploy:
    body: dict[str, Any] = {"clearCache": "clear" if clear_cache else "do_not_clear"}
    if commit_id:
        body["commitId"] = commit_id
    if image_url:
        body["imageUrl"] = image_url

    def matches(deploy: Deploy) -> bool:
        if deploy.trigger == "rollback":
            return False
        return commit_id is None or same_commit(deploy.commit_id, commit_id)

    return _create_deploy_once(api, what="trigger deploy", path=f"/services/{service_id}/deploys", body=body,
                               service_id=service_id, matches=matches, requested_at=requested_at)


def rollback_once(api: RenderApi, service_id: str, deploy_id: str, *, requested_at: float | None = None) -> Deploy:
    target_commit: list[str | None] = []

    def matches(deploy: Deploy) -> bool:
        if deploy.trigger != "rollback":
            return False
        if not target_commit:
            target_commit.append(get_deploy(api, service_id, deploy_id).commit_id)
        return target_commit[0] is None or same_commit(deploy.commit_id, target_commit[0])

    return _create_deploy_once(api, what="rollback", path=f"/services/{service_id}/rollback",
                               body={"deployId": deploy_id}, service_id=service_id, matches=matches,
                               requested_at=requested_at)


def trigger_cron_run_once(api: RenderApi, cron_job_id: str, *, not_before: datetime | None = None,
                          requested_at: float | None = None) -> CronJobRun:
    """Start one run of the cron job (Render cancels any active run); at most one run per call."""
    since = datetime.fromtimestamp(_since(api, requested_at), UTC)
    if not_before is not None and not_before > since:
        since = not_before

    def lookup() -> CronJobRun | None:
        started = list_events(api, cron_job_id, types=["cron_job_run_started"], start_time=since, max_items=20)
        for event in started:  # newest first
            run_id = event.details.get("cronJobRunId")
            if run_id and (event.timestamp is None or event.timestamp >= since):
                return CronJobRun(id=str(run_id), status="pending", started_at=event.timestamp)
        return None

    return create_once(api, what="trigger cron job run", path=f"/cron-jobs/{cron_job_id}/runs", body={},
                       resource=f"cron job {cron_job_id}", lookup=lookup,
                       parse=lambda data: CronJobRun.from_json(data) if isinstance(data, dict) and data.get("id")
                       else None,
                       names=("cron_run_trigger_ambiguous", "cron_run_found_after_ambiguous_trigger",
                              "cron_run_found_without_id"),
                       describe=lambda run: {"run_id": run.id},
                       context={"request": "trigger cron job run", "cron_job_id": cron_job_id},
                       missing_hint="look at the cron job's runs in the Render dashboard before triggering again",
                       resumed=requested_at is not None)
