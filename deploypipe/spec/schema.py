"""The JSON Schema of the pipeline format, with each stage type's parameters under ``with``."""

from __future__ import annotations

from typing import Any

from deploypipe.spec.model import Pipeline
from deploypipe.stages.registry import get_stage, known_types

__all__ = ["pipeline_schema"]


_VARIABLE = {"type": "string", "pattern": r"^\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}$",
             "description": "${VAR} or ${VAR:-default}, interpolated from the environment"}


def _allow_variables(node: Any) -> Any:
    """Numbers and booleans may also be written as ${VAR} (interpolated before validation)."""
    if isinstance(node, list):
        return [_allow_variables(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _allow_variables(value) for key, value in node.items()}
    if node.get("type") in ("number", "integer", "boolean"):
        return {"anyOf": [node, _VARIABLE]}
    return node


def pipeline_schema() -> dict[str, Any]:
    """Pipeline schema whose ``stages`` items pick the ``with`` schema by ``type`` (if/then per type)."""
    schema = Pipeline.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "deploypipe pipeline"
    defs = schema.setdefault("$defs", {})
    stage_def = defs["StageSpec"]
    stage_def["properties"]["type"]["enum"] = known_types()
    branches = []
    for type_name in known_types():
        params_schema = get_stage(type_name).Params.model_json_schema(ref_template="#/$defs/{model}")
        for name, sub in params_schema.pop("$defs", {}).items():
            defs.setdefault(name, sub)
        key = "Params_" + type_name.replace(".", "_")
        defs[key] = params_schema
        branches.append({"if": {"properties": {"type": {"const": type_name}}},
                         "then": {"properties": {"with": {"$ref": f"#/$defs/{key}"}}}})
    stage_def["allOf"] = branches
    return _allow_variables(schema)
