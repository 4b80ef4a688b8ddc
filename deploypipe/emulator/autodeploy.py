"""Auto-deploy: a new commit on a service's branch deploys it when ``autoDeploy`` is "yes", as on Render.

``push`` is the decision for one commit: ignored when auto-deploy is off,
``commit_ignored`` when the message carries a skip phrase (``[skip render]``,
``[render skip]``, ``[skip deploy]``, ``[deploy skip]``, ``[skip cd]``,
``[cd skip]``), otherwise a deploy with ``trigger: new_commit``. An API
rollback leaves auto-deploy on, so the next commit deploys again: the Render
pitfall this reproduces. ``BranchWatcher`` polls the local repository's
branches (what a push to GitHub is for Render) and calls ``push``.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from deploypipe.emulator.procs import resolve_commit

if TYPE_CHECKING:  # pragma: no cover
    from deploypipe.emulator.records import DeployRec, ServiceRec
    from deploypipe.emulator.state import Emulator

__all__ = ["BranchWatcher", "push"]

log = structlog.get_logger("deploypipe.emulator")

_SKIP = re.compile(r"\[(skip (render|deploy|cd)|(render|deploy|cd) skip)\]", re.IGNORECASE)


def push(emulator: Emulator, service: ServiceRec, commit_id: str, message: str = "") -> DeployRec | None:
    """A new commit on ``service``'s branch: the auto-deploy it causes, if any."""
    if not service.auto_deploy:
        log.info("emulator_commit_not_auto_deployed", service=service.name, commit=commit_id)
        return None
    if _SKIP.search(message):
        emulator.event(service, "commit_ignored", id=commit_id,
                       url=f"{service.spec.repo or 'local'}/commit/{commit_id}")
        return None
    deploy, _queued = emulator.trigger(service, commit_id=commit_id, commit_message=message, trigger="new_commit")
    return deploy


class BranchWatcher:
    """Polls ``repo`` every ``poll_s`` seconds; each service's branch moving to a new commit is a push."""

    def __init__(self, emulator: Emulator, repo: Path, poll_s: float):
        self.emulator, self.repo, self.poll_s = emulator, repo, poll_s
        self._stop = threading.Event()
        self._heads = {s.id: self._head(s) for s in emulator.services.values()}
        self._thread = threading.Thread(target=self._run, name="branch-watcher", daemon=True)

    def _head(self, service: ServiceRec) -> tuple[str, str] | None:
        return resolve_commit(self.repo, None, service.spec.branch)

    def start(self) -> BranchWatcher:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s) and not self.emulator.closing.is_set():
            for service in list(self.emulator.services.values()):
                head = self._head(service)
                if head is not None and head != self._heads.get(service.id):
                    self._heads[service.id] = head
                    log.info("emulator_branch_moved", service=service.name, commit=head[0])
                    push(self.emulator, service, head[0], head[1])

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
