"""``plan``: what each stage of a pipeline would do, with resolved parameters (secrets masked); runs nothing.

``plan --types`` lists the stage types instead: what each does, its
parameters and the outputs later stages and ``when`` expressions can read.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from deploypipe.commands.invocation import Invocation, load, redactor_for
from deploypipe.commands.plan_phases import phase_order
from deploypipe.spec.release_order import order_of
from deploypipe.stages.db_pitr import plan_line
from deploypipe.stages.registry import STAGE_TYPES, get_stage

__all__ = ["plan_steps", "show_plan", "show_types", "stage_table", "stage_types"]

#: Stage types whose work depends on the database's safety path (dump or Render point-in-time recovery).
_PATH_STAGES = ("db.backup", "db.dry_run", "db.migrate")


def plan_steps(inv: Invocation, from_revision: str | None = None) -> list[dict[str, Any]]:
    """One dict per stage: id, type, when, on_failure, touches_production, would, params (masked); for
    db.backup/db.dry_run/db.migrate, database_path: which path the database takes (dump or pitr) and why; for a
    db.migrate with phase: expand, phase_order (deploypipe.commands.plan_phases: SpecError when it is refused); for
    render.release, waves and waves_from: where their order came from (the pipeline or the Blueprint)."""
    redactor = redactor_for(inv)
    loaded = load(inv, redactor)
    orders = phase_order(loaded, inv.state_dir, inv.project_dir, from_revision)
    steps = []
    for stage in loaded.spec.stages:
        impl = get_stage(stage.type)
        params = loaded.params[stage.id]
        step = {"id": stage.id, "type": stage.type, "when": stage.when, "on_failure": stage.on_failure,
                "touches_production": impl.touches_production, "would": impl.plan(params),
                "params": params.model_dump(mode="json")}
        if stage.type in _PATH_STAGES:
            step["database_path"] = plan_line(loaded.spec.targets.databases[params.database])
        if stage.type == "render.release":  # its waves, and where their order came from (a local file at most)
            order = order_of(params, loaded.spec.targets, inv.project_dir)
            step["waves"], step["waves_from"] = order.waves, order.reason
        details = getattr(impl, "plan_details", None)  # e.g. db.lint: each migration's phase, read offline
        if details is not None:
            step["details"] = details(params, lambda value: inv.project_dir / value)
        if stage.id in orders:
            step["phase_order"] = orders[stage.id]
        steps.append(redactor(step))
    return steps


def show_plan(inv: Invocation, as_json: bool, from_revision: str | None = None) -> int:
    steps = plan_steps(inv, from_revision)
    out = inv.out
    if as_json:
        out.write(json.dumps(steps, indent=2) + "\n")
        return 0
    out.write(f"pipeline {inv.pipeline_path()}: {len(steps)} stages (nothing is run)\n")
    for number, step in enumerate(steps, 1):
        marker = " [touches production]" if step["touches_production"] else ""
        when = "" if step["when"] == "on_success" else f" (when: {step['when']})"
        out.write(f"{number:>2}. {step['id']} ({step['type']}){marker}{when}: {step['would']}\n")
        if "database_path" in step:
            out.write(f"      database path: {step['database_path']}\n")
        if "waves" in step:
            waves = " then ".join("[" + ", ".join(wave) + "]" for wave in step["waves"])
            out.write(f"      release waves: {waves} (order: {step['waves_from']})\n")
        for line in step.get("details", ()):
            out.write(f"      {line}\n")
        if "phase_order" in step:
            out.write(f"      {step['phase_order']['line']}\n")
        for key, value in step["params"].items():
            out.write(f"      {key}: {json.dumps(value)}\n")
    return 0


def _fields(model: type[BaseModel]) -> list[dict[str, Any]]:
    return [{"name": name, "type": _type_name(info.annotation), "required": info.is_required(),
             "description": info.description or ""} for name, info in model.model_fields.items()]


def _type_name(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) if isinstance(annotation, type) else None
    return text or str(annotation).replace("typing.", "")


def stage_types() -> list[dict[str, Any]]:
    """Every registered stage type: description, whether it touches production, params and outputs."""
    return [{"type": name, "description": stage.description, "touches_production": stage.touches_production,
             "params": _fields(stage.Params), "outputs": _fields(stage.Outputs)}
            for name, stage in sorted(STAGE_TYPES.items())]


def show_types(inv: Invocation, as_json: bool) -> int:
    types = stage_types()
    out = inv.out
    if as_json:
        out.write(json.dumps(types, indent=2) + "\n")
        return 0
    for item in types:
        marker = " [touches production]" if item["touches_production"] else ""
        out.write(f"{item['type']}{marker}: {item['description']}\n")
        out.write("  with: " + ", ".join(f["name"] for f in item["params"]) + "\n")
        out.write("  outputs: " + (", ".join(f"{f['name']} ({f['type']})" for f in item["outputs"]) or "none") + "\n")
    return 0


def stage_table() -> str:
    """The README's table of stage types, from the registry (a test keeps the README equal to it)."""
    rows = ["| type | touches production | what it does | parameters | outputs |", "| --- | --- | --- | --- | --- |"]
    for item in stage_types():
        params = ", ".join(f"`{f['name']}`" for f in item["params"])
        outputs = ", ".join(f"`{f['name']}`" for f in item["outputs"]) or "—"
        description = item["description"].replace("|", "\\|")
        rows.append(f"| `{item['type']}` | {'yes' if item['touches_production'] else 'no'} | {description} | "
                    f"{params} | {outputs} |")
    return "\n".join(rows)
