"""``rollback``: undo by hand — a service to an earlier deploy (``--to``/default) or a whole run (``--run``).

The same stages and verification as an automatic rollback, with a run record
like a deploy's. It asks before acting on a terminal and refuses without
``--yes`` when nobody can answer.
"""

from __future__ import annotations

import sys
from typing import Any

from deploypipe.app import Invocation, load, run_pipeline
from deploypipe.errors import UsageError
from deploypipe.spec.loader import LoadedPipeline
from deploypipe.spec.model import Pipeline, StageSpec
from deploypipe.stages.registry import get_stage

__all__ = ["rollback"]


def _service_key(loaded: LoadedPipeline, service: str | None) -> str:
    services = loaded.spec.targets.services
    if service:
        for key, target in services.items():
            if service in (key, target.name, target.id):
                return key
        raise UsageError(f"--service {service}: not a service of pipeline {loaded.spec.name}",
                         hint=f"use one of: {', '.join(sorted(services)) or 'none declared'}")
    if len(services) == 1:
        return next(iter(services))
    raise UsageError(f"pipeline {loaded.spec.name} has {len(services)} services; say which with --service",
                     hint=f"one of: {', '.join(sorted(services)) or 'none declared'}")


def _rollback_pipeline(loaded: LoadedPipeline, key: str, to: str | None) -> LoadedPipeline:
    """A two-stage pipeline: render.rollback of ``key``, then the pipeline's own health verification for it."""
    stages = [StageSpec.model_validate({"id": "rollback", "type": "render.rollback",
                                        "with": {"service": key, **({"to": to} if to else {})}})]
    params: dict[str, Any] = {"rollback": get_stage("render.rollback").Params.model_validate(stages[0].with_)}
    verify = next((s for s in loaded.spec.stages
                   if s.type == "verify.health" and getattr(loaded.params[s.id], "service", None) == key), None)
    if verify is not None:
        stages.append(StageSpec.model_validate({"id": "verify", "type": "verify.health", "with": verify.with_}))
        params["verify"] = loaded.params[verify.id]
    spec = Pipeline.model_validate({"version": 1, "name": loaded.spec.name, "targets": loaded.spec.targets.model_dump(),
                                    "lock": loaded.spec.lock.model_dump(), "stages": [s.model_dump(by_alias=True) for s in stages]})
    return LoadedPipeline(loaded.path, spec, params, loaded.secrets, loaded.source)


def _show_candidates(inv: Invocation, loaded: LoadedPipeline, key: str) -> str | None:
    """Print the live deploy and recent live-able deploys; return the default target deploy id."""
    from deploypipe.app import _resources
    from deploypipe.redact import Redactor
    from deploypipe.stages.render import rollback_candidates

    resources = _resources(inv, loaded, Redactor())
    try:
        target = loaded.spec.targets.services[key]
        service = resources.render.find_service(target.id or target.name)
        candidates = rollback_candidates(resources.render, service.id)
    finally:
        resources.close()
    out = inv.stderr or sys.stderr
    out.write(f"service {target.ref} ({service.id}): recent deploys\n")
    for item in candidates:
        out.write(f"  {item['id']}  {str(item.get('commit') or '')[:12]:<12} {item.get('status', ''):<12} "
                  f"{item.get('created_at', '')}  {str(item.get('message') or '')[:50]}\n")
    return next((c["id"] for c in candidates if c.get("status") != "live"), None)


def rollback(inv: Invocation, *, service: str | None, to: str | None, run: str | None, yes: bool) -> dict[str, Any]:
    if to and run:
        raise UsageError("--to and --run exclude each other", hint="roll back one service (--to) or undo one run (--run)")
    loaded = load(inv)
    if run:
        if not yes and not inv.is_interactive():
            raise UsageError(f"refusing to undo run {run} without confirmation", hint="pass --yes (no terminal to ask)")
        if not yes and not _confirm(inv, f"Undo what run {run} changed in production?"):
            raise UsageError("rollback not confirmed; nothing was changed")
        from deploypipe.journal import read_events, run_dir_for

        events = read_events(run_dir_for(inv.state_dir, run))
        return run_pipeline(inv, loaded=loaded, execute=lambda runner: runner.undo(events, run))
    key = _service_key(loaded, service)
    if not yes:
        if not inv.is_interactive():
            raise UsageError("refusing to roll back without confirmation", hint="pass --yes (no terminal to ask)")
        default = to or _show_candidates(inv, loaded, key)
        if not _confirm(inv, f"Roll {key} back to {default or 'the previous successful deploy'}?"):
            raise UsageError("rollback not confirmed; nothing was changed")
    synthetic = _rollback_pipeline(loaded, key, to)
    return run_pipeline(inv, loaded=synthetic, execute=lambda runner: runner.run(manual_rollback=True))


def _confirm(inv: Invocation, question: str) -> bool:
    out = inv.stderr or sys.stderr
    out.write(f"{question} [y/N] ")
    out.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")
