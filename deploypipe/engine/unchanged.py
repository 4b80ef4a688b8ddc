"""Skip a release that changes nothing: every service already runs the commit to deploy, and no migration is pending.

Judged from the typed outputs of the pipeline's read-only stages, as soon as
all of them have run: ``render.preflight`` (the live commit and the commit to
deploy of each service) and, when the pipeline has one, ``db.migration_status``
(nothing pending). The rest of the run is then skipped (exit 0, saying so);
``deploy --force`` releases anyway.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from deploypipe.core.commits import same_commit
from deploypipe.spec.model import StageSpec
from deploypipe.stages.base import Outputs
from deploypipe.stages.db_checks import DbMigrationStatus
from deploypipe.stages.render_preflight import RenderPreflight

__all__ = ["nothing_to_release"]


def nothing_to_release(stages: Sequence[StageSpec], outputs: Mapping[str, Outputs]) -> str | None:
    """Why the run has nothing to release, once the checks that can tell have all run; None otherwise."""
    checks = [s for s in stages if s.type in (RenderPreflight.type, DbMigrationStatus.type)]
    if not any(s.type == RenderPreflight.type for s in checks) or any(s.id not in outputs for s in checks):
        return None
    live: list[str] = []
    for stage in checks:
        found = outputs[stage.id]
        if isinstance(found, DbMigrationStatus.Outputs) and found.pending_count:
            return None
        if isinstance(found, RenderPreflight.Outputs):
            for key, service in found.services.items():
                if not service.commit or not same_commit(service.commit, service.live_commit):
                    return None
                live.append(f"{key} at {service.commit[:12]}")
    if not live:
        return None
    return f"nothing to release: {', '.join(live)} already live and no migration pending (--force releases anyway)"
