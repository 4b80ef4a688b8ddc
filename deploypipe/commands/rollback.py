"""``rollback``: undo by hand — a service to an earlier deploy (``--to``/default) or a whole run (``--run``).

The same stages and verification as an automatic rollback, with a run record
like a deploy's. It asks before acting on a terminal and refuses without
``--yes`` when nobody can answer.
"""

from __future__ import annotations

from typing import Any

from deploypipe.commands.invocation import Invocation, load, redactor_for, resources_for
from deploypipe.commands.run import run_pipeline
from deploypipe.engine.journal import read_events, run_dir_for
from deploypipe.engine.loader import LoadedPipeline
from deploypipe.errors import UsageError
from deploypipe.render.history import rollback_candidates
from deploypipe.spec.model import Pipeline, StageSpec
from deploypipe.stages.registry import get_stage
from deploypipe.stages.report import Report

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
                                    "lock": loaded.spec.lock.model_dump(),
                                    "stages": [s.model_dump(by_alias=True) for s in stages]})
    return LoadedPipeline(loaded.path, spec, params, loaded.secrets, loaded.source)


def _show_candidates(inv: Invocation, loaded: LoadedPipeline, key: str) -> str | None:
    """Print the live deploy and recent live-able deploys; return the default target deploy id."""
    resources = resources_for(inv, loaded, redactor_for(inv))
    target = loaded.spec.targets.services[key]
    try:
        service = resources.render.find_service(target.id or target.name or key)
        candidates = rollback_candidates(resources.render, service.id)
    finally:
        resources.close()
    inv.err.write(f"service {target.ref} ({service.id}): recent deploys\n")
    for item in candidates:
        inv.err.write(f"  {item['id']}  {str(item.get('commit') or '')[:12]:<12} {item.get('status', ''):<12} "
                      f"{item.get('created_at', '')}  {str(item.get('message') or '')[:50]}\n")
    return next((c["id"] for c in candidates if c.get("status") != "live"), None)


def _confirmed(inv: Invocation, yes: bool, question: Any, *, what: str = "roll back") -> None:
    """Go on only with --yes, or when someone at a terminal says yes."""
    if yes:
        return
    if not inv.is_interactive():
        raise UsageError(f"refusing to {what} without confirmation", hint="pass --yes (no terminal to ask)")
    if not inv.confirm(question() if callable(question) else question):
        raise UsageError("rollback not confirmed; nothing was changed")


def rollback(inv: Invocation, *, service: str | None, to: str | None, run: str | None, yes: bool) -> Report:
    if to and run:
        raise UsageError("--to and --run exclude each other",
                         hint="roll back one service (--to) or undo one run (--run)")
    loaded = load(inv)
    if run:
        events = read_events(run_dir_for(inv.state_dir, run))
        _confirmed(inv, yes, f"Undo what run {run} changed in production?", what=f"undo run {run}")
        return run_pipeline(inv, loaded=loaded, execute=lambda runner: runner.undo(events, run))
    key = _service_key(loaded, service)
    _confirmed(inv, yes, lambda: f"Roll {key} back to "
                             f"{to or _show_candidates(inv, loaded, key) or 'the previous successful deploy'}?")
    return run_pipeline(inv, loaded=_rollback_pipeline(loaded, key, to),
                        execute=lambda runner: runner.run(manual_rollback=True))
