"""The order of a ``render.release``: the pipeline's, else its Blueprint's ``fromService`` references, else one wave.

The first of these that orders the release's services decides:

1. the stage's ``with.waves``;
2. the ``depends_on`` of the release's service targets;
3. the pipeline's Blueprint (the stage's ``with.blueprint``; by default ``local.blueprint`` for the local default,
   else ``render.yaml``, in the project directory): a service whose ``envVars`` read another service of the
   release with ``fromService`` (its host, port, hostport or one of its env vars) goes in a later wave than that
   service. Targets are matched to Blueprint services by ``name``; ``fromGroup`` names an environment group, not a
   service, and orders nothing;
4. one wave.

Render accepts references both ways between two services (addresses are known before any deploy), but no wave
order follows from them: a cycle among the release's services is refused (exit 2) with the Blueprint's file, line
and key, and the hint to declare the order in the pipeline, which takes precedence. Reading the Blueprint is a
local file read, so ``plan`` stays free of network and database access.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Sequence

from pydantic import BaseModel, ConfigDict

from deploypipe.core.yamlio import load_yaml
from deploypipe.errors import SpecError
from deploypipe.spec.model import Pipeline
from deploypipe.spec.targets import Targets
from deploypipe.spec.waves import layered, plan_waves

__all__ = ["DEFAULT_BLUEPRINT", "ReleaseOrder", "Reference", "bind_blueprints", "order_of", "read_references",
           "release_order"]

#: where Render looks for a Blueprint, and where a pipeline without ``local:`` finds it
DEFAULT_BLUEPRINT = "render.yaml"


@dataclass(frozen=True)
class Reference:
    """One ``fromService`` entry of a Blueprint: service ``reader`` reads service ``source`` into env var ``key``."""

    reader: str
    source: str
    key: str
    loc: tuple[Any, ...]
    where: str
    line: int | None

    @property
    def dotted(self) -> str:
        """``services[1].envVars[0].fromService``"""
        return "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else p) for i, p in enumerate(self.loc))


class ReleaseOrder(BaseModel):
    """A release's waves and where their order came from (``reason``: one line for plan, journal and report)."""

    model_config = ConfigDict(frozen=True)

    waves: list[list[str]]
    source: Literal["waves", "depends_on", "blueprint", "none"]
    reason: str

    def shown(self) -> str:
        """``[api] then [web, worker]``"""
        return " then ".join("[" + ", ".join(wave) + "]" for wave in self.waves) or "no service"


def read_references(path: Path) -> list[Reference]:
    """Every ``fromService`` entry of the Blueprint at ``path`` (entries of other shapes are left to lint.blueprint);
    SpecError when the file is not YAML deploypipe reads."""
    loaded = load_yaml(path)
    services = loaded.data.get("services") if isinstance(loaded.data, dict) else None
    found: list[Reference] = []
    for i, service in enumerate(services if isinstance(services, list) else []):
        name = service.get("name") if isinstance(service, dict) else None
        env_vars = service.get("envVars") if isinstance(service, dict) else None
        for j, var in enumerate(env_vars if isinstance(name, str) and isinstance(env_vars, list) else []):
            ref = var.get("fromService") if isinstance(var, dict) else None
            if isinstance(ref, dict) and isinstance(ref.get("name"), str):
                loc = ("services", i, "envVars", j, "fromService")
                found.append(Reference(str(name), ref["name"], str(var.get("key", "?")), loc, loaded.where(loc),
                                       loaded.line_of(loc)))
    return found


def _cycle(chosen: Sequence[str], after: Mapping[str, Sequence[str]]) -> list[str]:
    """A cycle of ``after`` among ``chosen`` ([a, b, a]), else []."""
    left = set(layered(chosen, after)[1])  # each has a dependency left: follow them until one comes back
    if not left:
        return []
    path = [min(left)]
    while True:
        step = min(d for d in after.get(path[-1], ()) if d in left)
        if step in path:
            return path[path.index(step):] + [step]
        path.append(step)


def _read(pair: tuple[str, str], ref: Reference, line: bool = False) -> str:
    """``web after api (frontend's API_HOST fromService backend-api[, line 14])``"""
    at = f", line {ref.line}" if line and ref.line else ""
    return f"{pair[0]} after {pair[1]} ({ref.reader}'s {ref.key} fromService {ref.source}{at})"


def release_order(keys: Sequence[str], targets: Targets, explicit: Sequence[Sequence[str]] | None,
                  blueprint: Path | None, shown: str | None = None) -> ReleaseOrder:
    """The waves of the release of ``keys`` (see the module docstring); ``shown`` names ``blueprint`` in messages.

    ValueError for explicit waves that break ``depends_on``; SpecError (exit 2) for a cycle of Blueprint references.
    """
    chosen = list(dict.fromkeys(keys))
    services = targets.services
    if explicit:
        waves = plan_waves(chosen, {k: t.depends_on for k, t in services.items()}, explicit)
        return ReleaseOrder(waves=waves, source="waves", reason="the pipeline's with.waves")
    declared = {k: [d for d in services[k].depends_on if d in chosen] for k in chosen if k in services}
    if any(declared.values()):
        pairs = "; ".join(f"{k} after {', '.join(d)}" for k, d in declared.items() if d)
        return ReleaseOrder(waves=plan_waves(chosen, declared), source="depends_on",
                            reason=f"the pipeline's depends_on ({pairs})")
    name = shown or str(blueprint)
    if blueprint is None or not blueprint.is_file():
        missing = f" ({name} not found)" if blueprint is not None else ""
        return ReleaseOrder(waves=plan_waves(chosen, {}), source="none",
                            reason=f"none in the pipeline and no Blueprint{missing}: one wave")
    key_of = {t.name: k for k, t in services.items() if k in chosen and t.name}
    used: dict[tuple[str, str], Reference] = {}  # (reader's key, source's key) -> its first reference
    for ref in read_references(blueprint):
        if ref.reader in key_of and ref.source in key_of and ref.reader != ref.source:
            used.setdefault((key_of[ref.reader], key_of[ref.source]), ref)
    if not used:
        return ReleaseOrder(waves=plan_waves(chosen, {}), source="none",
                            reason=f"none in the pipeline, and no fromService between these services in {name}: "
                                   f"one wave")
    after: dict[str, list[str]] = {}
    for reader, source in used:
        after.setdefault(reader, []).append(source)
    cycle = _cycle(chosen, after)
    if cycle:
        steps = list(zip(cycle, cycle[1:], strict=False))
        reads = ", ".join(_read(step, used[step]) for step in steps)
        first = used[steps[0]]
        raise SpecError(f"{first.dotted}: fromService references make a cycle between the services of a "
                        f"render.release ({reads}), so no wave order follows; expected references one way only",
                        where=first.where,
                        hint="declare the order in the pipeline (render.release with.waves, or depends_on on the "
                             "service targets): it takes precedence over the Blueprint")
    reads = "; ".join(_read(pair, ref, line=True) for pair, ref in used.items())
    return ReleaseOrder(waves=plan_waves(chosen, after), source="blueprint", reason=f"the Blueprint {name}: {reads}")


def order_of(params: Any, targets: Targets, project_dir: Path) -> ReleaseOrder:
    """The order of a release whose params name its ``services``, ``waves`` and ``blueprint`` (relative to
    ``project_dir``)."""
    blueprint = project_dir / params.blueprint if params.blueprint else None
    return release_order(params.services or list(targets.services), targets, params.waves, blueprint,
                         params.blueprint)


def bind_blueprints(spec: Pipeline, params: Mapping[str, Any], project_dir: Path,
                    where: Callable[[tuple[Any, ...]], str]) -> dict[str, Any]:
    """``params`` with each release's ``blueprint`` set (when unset) to the pipeline's Blueprint, each release's
    order checked: SpecError (exit 2) for a Blueprint named in ``with`` that is missing, or a cycle."""
    default = spec.local.blueprint if spec.local is not None else DEFAULT_BLUEPRINT
    bound = dict(params)
    for index, stage in enumerate(spec.stages):
        stage_params = params[stage.id]
        fields = type(stage_params).model_fields
        if "blueprint" not in fields or "waves" not in fields:
            continue
        named = stage_params.blueprint
        if named is not None and not (project_dir / named).is_file():
            raise SpecError(f"stages[{index}].with.blueprint: {named} not found in {project_dir}; expected the "
                            f"Blueprint whose fromService references order the waves",
                            where=where(("stages", index, "with", "blueprint")))
        bound[stage.id] = stage_params.model_copy(update={"blueprint": named or default})
        order_of(bound[stage.id], spec.targets, project_dir)
    return bound
