"""``status``: what is live on each service of a pipeline, how far it trails its branch, and whether it is frozen.

For every service target (``status_service``): the live deploy (id, commit, since when); how many commits the live
commit is behind the branch Render builds and how old the oldest missing one is; the last deploys and how they
ended; auto-deploy; a deploy in progress; for a cron job, its live release's last ended run.

Production is FROZEN when the last ``failed`` deploys (default 2) all failed, or the live commit trails the branch
by more than ``max_behind_commits`` commits or ``max_behind_hours`` hours (both off unless given). A service is
FAILING when its live release's instances failed within the last ``crash_window_s`` (default 15 min: a
crash-looping worker, whose deploy went live), or when it is a cron job whose live release's last ended run was
unsuccessful (``status_cron``); either is named with the app's own error line. A cron job with no run yet says
so and is not failing. Exit 0 healthy, 1 frozen or failing, 2 usage or configuration, or Render could not be asked
(nothing was checked).

Read-only: no run directory, no lock. Watch mode (``notify_env``): post to the webhook once per new problem and
once "recovered" when it clears (``status_watch``). The types (``--json``) are in ``status_model``, the wording
in ``status_text``.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

from deploypipe.commands.invocation import Invocation, redactor_for
from deploypipe.commands.lint import offline_env
from deploypipe.commands.status_model import Behind, DeployView, ServiceStatus, StatusReport, Thresholds
from deploypipe.commands.status_service import service_status
from deploypipe.commands.status_text import render_text
from deploypipe.commands.status_watch import watch_notify
from deploypipe.errors import ExitCode, ProviderError

__all__ = ["Behind", "DeployView", "ServiceStatus", "StatusReport", "Thresholds", "check_status", "show_status",
           "watch_notify"]


def check_status(inv: Invocation, limits: Thresholds, *, now: datetime | None = None) -> StatusReport:
    """Ask Render about every service target of the invocation's pipeline (read-only)."""
    from deploypipe.engine.loader import load_pipeline
    from deploypipe.render.client import RenderClient

    path = inv.pipeline_path()
    loaded = load_pipeline(path, offline_env(path, inv.env))
    now = now or datetime.now(UTC)
    services = []
    client = inv.render_factory() if inv.render_factory else RenderClient.from_env(inv.env)
    try:
        for key, target in loaded.spec.targets.services.items():
            repo = (inv.project_dir / target.repo_dir).resolve()
            services.append(service_status(client, key, target, repo, limits, now))
    finally:
        if inv.render_factory is None:
            client.close()
    problems = sorted([s.key, kind, s.live.id if s.live else ""] for s in services for kind in s.problems)
    fingerprint = hashlib.sha256(json.dumps(problems).encode()).hexdigest()[:16] if problems else ""
    return StatusReport(pipeline=loaded.spec.name, checked_at=now.isoformat().replace("+00:00", "Z"),
                        healthy=not problems, exit_code=1 if problems else 0, fingerprint=fingerprint,
                        services=services)


def show_status(inv: Invocation, limits: Thresholds, *, as_json: bool = False, notify_env: str | None = None,
                state: str | None = None, slack: bool = False) -> int:
    """Print the status (JSON on stdout with ``as_json``), notify when watching; return 0, 1 or 2."""
    try:
        report = check_status(inv, limits)
    except ProviderError as exc:
        inv.err.write(redactor_for(inv).text(f"deploypipe: status: Render could not be asked: {exc.render()}")
                      + "\n")
        return int(ExitCode.INVALID)
    if notify_env:
        where = Path(state) if state else inv.state_dir / "watch" / f"{report.pipeline}.json"
        report = report.model_copy(update={"notification": watch_notify(
            inv, report, url_env=notify_env, state=where if where.is_absolute() else inv.project_dir / where,
            slack=slack)})
    inv.out.write(report.model_dump_json(indent=2) + "\n" if as_json else render_text(report))
    inv.out.flush()
    return report.exit_code
