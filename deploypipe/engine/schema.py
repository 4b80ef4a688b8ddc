"""The JSON Schema of the pipeline format: each stage type's parameters under ``with``, and what it outputs.

The outputs of each stage type (what later stages and ``when`` expressions
read) are documented under ``x-stage-outputs``, an annotation keyword that
validators ignore.
"""

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


def _definitions(model_schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Move a model schema's nested definitions into the shared ``$defs``; return the model's own schema."""
    for name, sub in model_schema.pop("$defs", {}).items():
        defs.setdefault(name, sub)
    return model_schema


def pipeline_schema() -> dict[str, Any]:
    """Pipeline schema whose ``stages`` items pick the ``with`` schema by ``type`` (if/then per type)."""
    schema = Pipeline.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "deploypipe pipeline"
    defs = schema.setdefault("$defs", {})
    stage_def = defs["StageSpec"]
    stage_def["properties"]["type"]["enum"] = known_types()
    branches = []
    outputs: dict[str, Any] = {}
    for type_name in known_types():
        stage = get_stage(type_name)
        key = "Params_" + type_name.replace(".", "_")
        defs[key] = _definitions(stage.Params.model_json_schema(ref_template="#/$defs/{model}"), defs)
        out_key = "Outputs_" + type_name.replace(".", "_")
        defs[out_key] = _definitions(stage.Outputs.model_json_schema(ref_template="#/$defs/{model}"), defs)
        outputs[type_name] = {"$ref": f"#/$defs/{out_key}"}
        branches.append({"if": {"properties": {"type": {"const": type_name}}},
                         "then": {"properties": {"with": {"$ref": f"#/$defs/{key}"}}}})
    stage_def["allOf"] = branches
    schema["x-stage-outputs"] = outputs
    return _allow_variables(schema)
