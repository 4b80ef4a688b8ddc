"""At-most-once deploy triggers and rollbacks: a flaky network never produces two deploys.

A POST that creates a deploy is repeated only when Render surely did not
process it (connection refused, 429). After an *ambiguous* failure (read
timeout after sending, dropped connection, 5xx) the client first looks for the
deploy the lost request may have created: deploys created since a wall-clock
timestamp taken just before the first POST (minus ``lookup_skew_s`` for clock
skew) that match the commit (trigger) or ``trigger == "rollback"`` and the
target's commit (rollback). It POSTs again only when none is found, and looks
again after the back-off before that next POST. A ``202`` without a body is
answered the same way: the queued deploy is looked up.
"""

from __future__ import annotations

from typing import Any, Callable

import structlog

from deploypipe.core.commits import same_commit
from deploypipe.errors import ProviderError, TransientProviderError
from deploypipe.render.api import RenderApi, not_sent, read_json
from deploypipe.render.deploys import get_deploy, list_deploys
from deploypipe.render.models import Deploy

__all__ = ["rollback_once", "trigger_deploy_once"]

log = structlog.get_logger("deploypipe.render")


def _create_once(api: RenderApi, *, what: str, path: str, body: dict[str, Any], service_id: str,
                 matches: Callable[[Deploy], bool]) -> Deploy:
    since = api.wall_clock() - api.retry.lookup_skew_s
    ambiguous = False

    def lookup() -> Deploy | None:
        for deploy in list_deploys(api, service_id, created_after=since, max_items=20):  # newest first
            if matches(deploy):
                return deploy
        return None

    def attempt_once() -> Deploy:
        nonlocal ambiguous
        if ambiguous:
            found = lookup()
            if found is not None:
                log.info("deploy_found_after_ambiguous_trigger", request=what, service_id=service_id,
                         deploy_id=found.id, status=found.status)
                return found
        try:
            response = api.send("POST", path, json=body, resource=f"service {service_id}")
        except TransientProviderError as exc:
            if not_sent(exc):
                raise
            ambiguous = True
            log.warning("deploy_trigger_ambiguous", request=what, service_id=service_id, reason=exc.message)
            found = lookup()
            if found is not None:
                log.info("deploy_found_after_ambiguous_trigger", request=what, service_id=service_id,
                         deploy_id=found.id, status=found.status)
                return found
            raise
        data = read_json(response)
        if isinstance(data, dict) and data.get("id"):
            return Deploy.from_json(data)
        found = lookup()
        if found is None:
            raise ProviderError(f"{what}: Render answered {response.status_code} without a deploy, and no new "
                                f"deploy is listed", where=f"POST {response.request.url.path}",
                                status_code=response.status_code,
                                hint="look at the service's deploys in the Render dashboard before retrying")
        log.info("deploy_queued", request=what, service_id=service_id, deploy_id=found.id, status=found.status)
        return found

    for attempt in api.retrying(what):
        with attempt:
            deploy = attempt_once()
    return deploy


def trigger_deploy_once(api: RenderApi, service_id: str, *, commit_id: str | None = None,
                        clear_cache: bool = False, image_url: str | None = None) -> Deploy:
    body: dict[str, Any] = {"clearCache": "clear" if clear_cache else "do_not_clear"}
    if commit_id:
        body["commitId"] = commit_id
    if image_url:
        body["imageUrl"] = image_url

    def matches(deploy: Deploy) -> bool:
        if deploy.trigger == "rollback":
            return False
        return commit_id is None or same_commit(deploy.commit_id, commit_id)

    return _create_once(api, what="trigger deploy", path=f"/services/{service_id}/deploys", body=body,
                        service_id=service_id, matches=matches)


def rollback_once(api: RenderApi, service_id: str, deploy_id: str) -> Deploy:
    target_commit: list[str | None] = []

    def matches(deploy: Deploy) -> bool:
        if deploy.trigger != "rollback":
            return False
        if not target_commit:
            target_commit.append(get_deploy(api, service_id, deploy_id).commit_id)
        return target_commit[0] is None or same_commit(deploy.commit_id, target_commit[0])

    return _create_once(api, what="rollback", path=f"/services/{service_id}/rollback", body={"deployId": deploy_id},
                        service_id=service_id, matches=matches)
