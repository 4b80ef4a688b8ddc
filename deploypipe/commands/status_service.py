"""One service in ``status``: its deploys, its distance to the branch, its live release's crashes and cron runs.

The live deploy and the last ``history`` deploys come from Render; how many commits the live commit is behind the
branch Render builds, and how old the oldest missing one is, from the target's git checkout (``repo_dir``:
``origin/<branch>``, else ``<branch>``). The problems, each judged against the thresholds:

- ``failed_deploys``: the last ``failed`` deploys (default 2) all failed;
- ``behind_commits`` / ``behind_hours``: the live commit trails the branch by more than ``max_behind_commits``
  commits or ``max_behind_hours`` hours (both off unless given);
- ``crashing``: the live release's instances failed (``server_failed``/``server_restarted``) within the last
  ``crash_window_s``, not counting failures while another deploy's new instance was health-checked;
- ``cron_failing``: a cron job whose live release's last ended run was unsuccessful (``status_cron``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from deploypipe.commands.status_cron import cron_runs
from deploypipe.commands.status_model import Behind, CronRuns, DeployView, ServiceStatus, Thresholds
from deploypipe.commands.status_text import message
from deploypipe.render.history import failure_streak
from deploypipe.render.instances import DEFAULT_ERROR_PATTERN, describe_crash, during, look
from deploypipe.render.models import Deploy
from deploypipe.stages.diagnostics import headline
from deploypipe.stages.service_refs import git

__all__ = ["behind", "service_status"]

_CRON_TYPE = "cron_job"


def behind(repo: Path, commit: str | None, branch: str | None, now: datetime) -> Behind:
    """Commits on the branch (``origin/<branch>``, else ``<branch>``) that ``commit`` lacks, and the oldest's age."""
    if not commit or not branch:
        return Behind(branch=branch, note="nothing is live" if not commit else
                      "Render reports no branch for this service")
    if git(repo, "rev-parse", "--git-dir").returncode != 0:
        return Behind(branch=branch, note=f"{repo} is not a git checkout (set repo_dir)")
    ref = next((r for r in (f"origin/{branch}", branch)
                if git(repo, "rev-parse", "--verify", "-q", f"{r}^{{commit}}").returncode == 0), None)
    if ref is None:
        return Behind(branch=branch, note=f"the checkout at {repo} does not know branch {branch} "
                                          f"(git fetch origin {branch})")
    if git(repo, "cat-file", "-e", f"{commit}^{{commit}}").returncode != 0:
        return Behind(branch=branch, ref=ref,
                      note=f"the checkout at {repo} does not know the live commit {commit[:7]} (git fetch)")
    commits = int(git(repo, "rev-list", "--count", f"{commit}..{ref}").stdout.strip() or 0)
    if not commits:
        return Behind(branch=branch, ref=ref, commits=0)
    oldest = float(git(repo, "log", "--format=%ct", f"{commit}..{ref}").stdout.split()[-1])
    return Behind(branch=branch, ref=ref, commits=commits,
                  oldest_missing_at=datetime.fromtimestamp(oldest, UTC).isoformat().replace("+00:00", "Z"),
                  hours=round(max(0.0, now.timestamp() - oldest) / 3600, 2))


def _crashes(client: Any, service_id: str, owner_id: str, live: Deploy, recent: list[Deploy], limits: Thresholds,
             now: datetime) -> dict[str, Any]:
    """Instance failures of the live release in the crash window (not those of other deploys' new instances while
    they were health-checked), and the app's error line then."""
    went_live = live.finished_at or live.created_at or now
    since = max(went_live, now - timedelta(seconds=limits.crash_window_s))
    seen = look(client, service_id=service_id, owner_id=owner_id, since=since, until=now,
                pattern=re.compile(DEFAULT_ERROR_PATTERN), logs=False)
    others = [(d.created_at or now, (d.finished_at or now) + timedelta(seconds=2)) for d in recent if d.id != live.id]
    crashes = [e for e in seen.crashes if not during(e, others)]
    if not crashes:
        return {}
    return {"crashes": len(crashes), "crash": describe_crash(crashes[0]),
            "error_line": headline(list(seen.errors)) if seen.errors else ""}


def service_status(client: Any, key: str, target: Any, repo: Path, limits: Thresholds, now: datetime
                   ) -> ServiceStatus:
    """What Render and the git checkout say about service target ``key``, judged against ``limits``."""
    service = client.find_service(target.id or target.name or key)
    recent = client.list_deploys(service.id, max_items=limits.history)
    live = next((d for d in recent if d.status == "live"), None) or client.live_deploy(service.id)
    busy = next((d for d in recent if d.in_progress), None)
    gap = behind(repo, live.commit_id if live else None, service.branch, now)
    failed = [DeployView.of(d) for d in failure_streak(recent)]
    problems = [problem for problem, found in (
        ("failed_deploys", len(failed) >= limits.failed),
        ("behind_commits", limits.max_behind_commits is not None and (gap.commits or 0) > limits.max_behind_commits),
        ("behind_hours", limits.max_behind_hours is not None and (gap.hours or 0) > limits.max_behind_hours)) if found]
    crashed = _crashes(client, service.id, service.owner_id, live, recent, limits, now) if live else {}
    if crashed:
        problems.append("crashing")
    cron: CronRuns | None = None
    if service.type == _CRON_TYPE or getattr(target, "kind", None) == "cron":
        cron, run_error = (cron_runs(client, service_id=service.id, owner_id=service.owner_id,
                                     since=live.finished_at or live.created_at or now, now=now,
                                     pattern=re.compile(DEFAULT_ERROR_PATTERN)) if live else (CronRuns(), ""))
        if cron.failing:
            problems.append("cron_failing")
            crashed = {**crashed, "error_line": run_error or crashed.get("error_line", "")}
    status = ServiceStatus(key=key, name=service.name, service_id=service.id, type=service.type,
                           branch=service.branch, auto_deploy=service.auto_deploy,
                           live=DeployView.of(live) if live else None, behind=gap,
                           in_progress=DeployView.of(busy) if busy else None,
                           recent=[DeployView.of(d) for d in recent], failed=failed, problems=problems, cron=cron,
                           **crashed)
    return status.model_copy(update={"message": message(status, limits, now)})
