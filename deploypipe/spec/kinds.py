"""Refuse, at load time, a stage given a service of a kind it cannot check (a URL stage on a worker), or waves
that name an unknown service or put a service before one it depends on.

``verify.health`` probes a URL and ``verify.traffic`` judges HTTP requests: on a worker or a cron job (and
``verify.health`` on a private service with no ``url`` set) they could only fail after the deploy, and that failure
would then fail the rollback's re-verification too. ``plan``, ``lint`` and ``deploy`` refuse it instead (exit 2),
naming the file, the line and the key.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from deploypipe.errors import SpecError
from deploypipe.spec.model import Pipeline
from deploypipe.spec.targets import KINDS_WITHOUT_URL, ServiceTarget
from deploypipe.spec.waves import plan_waves

__all__ = ["URL_STAGES", "check_service_kinds", "refusal"]

#: stage type -> (what it needs, kinds it refuses even with an explicit url)
URL_STAGES: Mapping[str, tuple[str, tuple[str, ...]]] = {
    "verify.health": ("needs the service's URL", ("worker", "cron")),
    "verify.traffic": ("judges the service's HTTP traffic", ("private", "worker", "cron")),
}

_ARTICLE = {"private": "a private service", "worker": "a background worker", "cron": "a cron job", "web": "web"}


def refusal(stage_type: str, key: str, target: ServiceTarget) -> str | None:
    """Why ``stage_type`` cannot check service target ``key`` (None when it can)."""
    if stage_type not in URL_STAGES:
        return None
    needs, never = URL_STAGES[stage_type]
    if target.kind in never or (target.kind in KINDS_WITHOUT_URL and not target.url):
        return (f"{stage_type} {needs}, and service target '{key}' is {_ARTICLE[target.kind]} (kind: "
                f"{target.kind}), which has none")
    return None


def _check_waves(spec: Pipeline, index: int, waves: list[list[str]], where: Callable[[tuple[Any, ...]], str]) -> None:
    declared = spec.targets.services
    loc = ("stages", index, "with", "waves")
    for name in (s for wave in waves for s in wave):
        if name not in declared:
            raise SpecError(f"stages[{index}].with.waves: unknown service '{name}'; expected one of: "
                            f"{', '.join(sorted(declared)) or 'none (declare targets.services)'}", where=where(loc))
    try:
        plan_waves([], {k: t.depends_on for k, t in declared.items()}, waves)
    except ValueError as exc:
        raise SpecError(f"stages[{index}].with.waves: {exc}; expected each service after the ones it depends_on",
                        where=where(loc)) from None


def _check_cron_runs(spec: Pipeline, index: int, keys: list[str], where: Callable[[tuple[Any, ...]], str]) -> None:
    for key in keys:
        target = spec.targets.services.get(key)
        if target is None or target.kind != "cron":
            what = f"service target '{key}' is {_ARTICLE[target.kind]}" if target else \
                f"'{key}' is not a service target"
            raise SpecError(f"stages[{index}].with.run_cron: {what}; expected cron job targets (kind: cron)",
                            where=where(("stages", index, "with", "run_cron")))


def check_service_kinds(spec: Pipeline, params: Mapping[str, Any], where: Callable[[tuple[Any, ...]], str]) -> None:
    """SpecError (exit 2) for the first stage whose ``with.service`` is a kind the stage cannot check, whose
    ``with.waves`` names an unknown service or breaks ``depends_on``, or whose ``with.run_cron`` is not a cron job."""
    for index, stage in enumerate(spec.stages):
        _check_cron_runs(spec, index, getattr(params[stage.id], "run_cron", None) or [], where)
        waves = getattr(params[stage.id], "waves", None)
        if isinstance(waves, list):
            _check_waves(spec, index, waves, where)
        key = getattr(params[stage.id], "service", None)
        target = spec.targets.services.get(key) if isinstance(key, str) else None
        problem = refusal(stage.type, key, target) if target is not None and key is not None else None
        if problem:
            raise SpecError(f"stages[{index}].with.service: {problem}; expected a web service",
                            where=where(("stages", index, "with", "service")),
                            hint="render.release verifies workers, private services and cron jobs from Render's "
                                 "events and logs; drop this stage or point it at a web service")
