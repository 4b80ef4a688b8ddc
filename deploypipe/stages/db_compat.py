"""The live release ``db.dry_run`` checks on the migrated copy: its code, and a sample of its real read requests.

The release that keeps serving while (and after) the migration runs is the one live now, not the commit being
deployed. With ``compat_service`` the dry run takes that release's code from the service target's ``repo_dir``
at the live commit ``render.preflight`` recorded (``git archive``, into the run's directory) and sends it:

- the GET paths of the service's recent request logs (Render's logs API, ``compat_sample`` most frequent);
- the GET smoke paths of the pipeline's ``verify.health`` stages for that service;
- ``compat_paths``.

Where that release cannot be started locally (no live deploy, the commit is not in ``repo_dir``) the dry run says
so in a warning and the compatibility stays unproven (``on_rollback: auto`` then never picks ``leave``). Both dry
runs use this: on the backup's verified copy (``stages/db.py``) and on a PITR clone (``stages/db_pitr.py``).
"""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from deploypipe.errors import DeployPipeError
from deploypipe.stages.context import StageContext

if TYPE_CHECKING:
    from deploypipe.db.compat import CompatResult

__all__ = ["LiveRelease", "compat_summary", "live_release", "live_release_for"]


@dataclass
class LiveRelease:
    """Where to start the live release (None: the dry run's ``cwd``), what to ask it, and what could not be done;
    not ``startable`` when the live release's code cannot be had here (the check is then skipped)."""

    startable: bool = True
    cwd: Path | None = None
    paths: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    checkout: Path | None = None

    def close(self) -> None:
        if self.checkout is not None:
            shutil.rmtree(self.checkout, ignore_errors=True)

    def compat_args(self, params: Any) -> dict[str, Any]:
        """The ``compat_*`` keywords of ``dry_run``/``rehearse`` for a db.dry_run's parameters: no command (no
        check) when the live release cannot be started here."""
        return {"compat_command": params.compat_command if self.startable else None,
                "compat_health_path": params.compat_health_path, "compat_cwd": self.cwd,
                "compat_paths": self.paths}


@contextmanager
def live_release_for(ctx: StageContext, params: Any) -> Iterator[LiveRelease]:
    """:func:`live_release` when the dry run checks compatibility (``compat_command``), else nothing to check; its
    checkout is removed afterwards."""
    live = live_release(ctx, params) if params.compat_command else LiveRelease()
    try:
        yield live
    finally:
        live.close()


def compat_summary(compat: CompatResult | None) -> str:
    """The end of a dry run's summary: what the live release proved on the migrated copy."""
    if compat is None:
        return ""
    if not compat.requests:
        return "; live release healthy on it"
    return f"; live release served {len(compat.requests)} real GET path(s) on it without a 5xx"


def live_release(ctx: StageContext, params: Any) -> LiveRelease:
    """The live release of ``params.compat_service`` (a db.dry_run's parameters) and the paths to send it."""
    found = LiveRelease(paths=list(params.compat_paths))
    service = params.compat_service
    if service is None:
        return found
    found.paths = [*_smoke_paths(ctx, service), *found.paths]
    state = _preflight_state(ctx, service)
    if state is None or not state.live_commit:
        found.warnings.append(f"compat: no live release of service {service} recorded (render.preflight before "
                              "db.dry_run names it): nothing to check, the compatibility is not proven")
        found.startable = False
        return found
    found.paths = [*_logged_paths(ctx, state.service_id, params, found.warnings), *found.paths]
    target = ctx.resources.targets.services[service]
    checkout = ctx.run_dir / f"{ctx.stage_id}.live-{state.live_commit[:12]}"
    archive = subprocess.run(["git", "-C", str(ctx.resources.path(target.repo_dir)), "archive", "--format=tar",
                              state.live_commit], capture_output=True)
    if archive.returncode != 0:
        found.warnings.append(f"compat: the live commit {state.live_commit[:12]} is not in {target.repo_dir}; the "
                              "live release cannot be started here, its compatibility is not proven")
        found.startable = False
        return found
    checkout.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-x", "-C", str(checkout)], input=archive.stdout, check=True)
    found.checkout, found.cwd = checkout, checkout / params.compat_dir
    return found


def _preflight_state(ctx: StageContext, service: str) -> Any:
    from deploypipe.stages.render_preflight import RenderPreflight

    preflight = ctx.latest(RenderPreflight.Outputs, lambda o: service in o.services)
    return preflight.services[service] if preflight is not None else None


def _smoke_paths(ctx: StageContext, service: str) -> list[str]:
    """GET smoke paths of the later health verifications of ``service``."""
    return [smoke.path for later in ctx.later.values() if getattr(later, "service", None) == service
            for smoke in getattr(later, "smoke", ()) if smoke.method == "GET"]


def _logged_paths(ctx: StageContext, service_id: str, params: Any, warnings: list[str]) -> list[str]:
    """The ``compat_sample`` most frequent GET paths of the service's request logs over ``compat_logs_s``."""
    if params.compat_sample == 0:
        return []
    end = ctx.now()
    try:
        client = ctx.resources.render
        owner_id = client.get_service(service_id).owner_id
        page = client.list_logs(owner_id, resources=service_id, start=end - timedelta(seconds=params.compat_logs_s),
                                end=end, types=["request"], methods=["GET"], limit=100)
    except DeployPipeError as exc:
        warnings.append(f"compat: Render's request logs could not be read ({exc.message}); only the smoke and "
                        "compat_paths paths were sent")
        return []
    counts = Counter(entry.labels.get("path", "") for entry in page.logs if entry.labels.get("method") == "GET")
    return [path for path, _ in counts.most_common(params.compat_sample) if path.startswith("/")]
