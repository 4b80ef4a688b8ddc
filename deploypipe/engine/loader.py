"""Load a pipeline file: YAML -> interpolation -> validated, immutable spec with stage params.

Every problem becomes one SpecError line naming the file and line, the path of
the key, what was expected and what was found.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from pydantic import BaseModel, ValidationError

from deploypipe.core.yamlio import LoadedYaml, load_yaml
from deploypipe.errors import SpecError
from deploypipe.spec import when as when_language
from deploypipe.spec.interpolate import Interpolator
from deploypipe.spec.kinds import check_service_kinds
from deploypipe.spec.model import Pipeline
from deploypipe.spec.release_order import bind_blueprints
from deploypipe.stages.db_phases import pipeline_problem
from deploypipe.stages.registry import get_stage, known_types

__all__ = ["LoadedPipeline", "dotted", "load_pipeline"]

_TARGET_REFS = {"service": "services", "services": "services", "database": "databases"}


@dataclass(frozen=True)
class LoadedPipeline:
    """A validated pipeline: the spec, each stage's validated params, and the secrets it resolved."""

    path: Path
    spec: Pipeline
    params: Mapping[str, Any]
    secrets: frozenset[str] = frozenset()
    source: LoadedYaml | None = field(default=None, repr=False)

    def where(self, *path: Any) -> str:
        return self.source.where(tuple(path)) if self.source else str(self.path)


def dotted(loc: tuple[Any, ...]) -> str:
    """('stages', 2, 'with', 'x') -> 'stages[2].with.x'"""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Keys accepted at ``loc`` inside ``model`` (best effort, for 'unknown key' messages)."""
    current: Any = model
    for part in loc:
        if isinstance(current, type) and issubclass(current, BaseModel):
            fields = {(f.alias or name): f for name, f in current.model_fields.items()}
            if part not in fields:
                return []
            current = fields[part].annotation
        elif isinstance(part, int) or isinstance(part, str):
            args = [a for a in typing.get_args(current) if a is not type(None)]
            origin = typing.get_origin(current)
            if origin in (list, dict, typing.Union, types.UnionType) and args:
                current = args[-1]
            else:
                return []
        while typing.get_origin(current) in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(current) if a is not type(None)]
            current = args[0] if args else current
            if len(args) <= 1:
                break
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted((f.alias or name) for name, f in current.model_fields.items())
    return []


def _describe(error: Mapping[str, Any], model: type[BaseModel], loc: tuple[Any, ...]) -> str:
    kind = error["type"]
    got = error.get("input")
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        allowed = _allowed_keys(model, loc[:-1])
        expected = f"; expected one of: {', '.join(allowed)}" if allowed else ""
        return f"unknown key '{loc[-1]}'{expected}"
    msg = error["msg"]
    msg = msg[len("Input should be ") :] if msg.startswith("Input should be ") else msg
    msg = msg[len("Value error, ") :] if msg.startswith("Value error, ") else msg
    shown = repr(got) if not isinstance(got, (dict, list)) else type(got).__name__
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return f"expected {msg}; got {shown}"


def _validation_error(
    exc: ValidationError, source: LoadedYaml, model: type[BaseModel], prefix: tuple[Any, ...] = ()
) -> SpecError:
    errors = exc.errors(include_url=False)
    first = errors[0]
    inner = tuple(p for p in first["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    loc = prefix + inner
    more = f" (+{len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    return SpecError(f"{dotted(loc)}: {_describe(first, model, inner)}{more}", where=source.where(loc))


def _interpolate(raw: dict[str, Any], env: Mapping[str, str], source: LoadedYaml) -> tuple[dict[str, Any], set[str]]:
    declared: dict[str, tuple[str | None, bool]] = {}
    variables = raw.get("variables")
    if isinstance(variables, dict):
        for name, spec in variables.items():
            if isinstance(spec, dict):
                default = spec.get("default")
                declared[str(name)] = (None if default is None else str(default), bool(spec.get("secret")))
    interp = Interpolator(env=env, declared=declared)
    missing: list[tuple[str, tuple[Any, ...]]] = []
    result = {
        key: value if key == "variables" else interp.walk(value, (key,), lambda n, p: missing.append((n, p)))
        for key, value in raw.items()
    }
    if missing:
        name, path = missing[0]
        raise SpecError(
            f"{dotted(path)}: variable ${{{name}}} is not set; expected it in the environment, "
            f"an inline default ${{{name}:-value}} or variables.{name}.default",
            where=source.where(path),
        )
    return result, interp.secret_values | {env[n] for n in interp.used if n in env and interp.is_secret(n)}


def _check_cross_references(spec: Pipeline, params: Mapping[str, Any], source: LoadedYaml) -> None:
    seen: dict[str, Any] = {}
    for index, stage in enumerate(spec.stages):
        if stage.id in seen:
            raise SpecError(
                f"stages[{index}].id: duplicate stage id '{stage.id}'; expected ids to be unique",
                where=source.where(("stages", index, "id")),
            )
        stage_params = params[stage.id]
        for key, kind in _TARGET_REFS.items():
            value = getattr(stage_params, key, None)
            names = value if isinstance(value, (list, tuple)) else ([value] if isinstance(value, str) else [])
            declared = getattr(spec.targets, kind)
            for name in names:
                if name not in declared:
                    known = ", ".join(sorted(declared)) or f"none (declare targets.{kind})"
                    raise SpecError(
                        f"stages[{index}].with.{key}: unknown {kind[:-1]} '{name}'; expected one of: {known}",
                        where=source.where(("stages", index, "with", key)),
                    )
        problem = when_language.check(stage.when, seen)
        if problem:
            raise SpecError(f"stages[{index}].when: {problem}", where=source.where(("stages", index, "when")))
        seen[stage.id] = get_stage(stage.type).Outputs
    misplaced = pipeline_problem(spec.stages, params)
    if misplaced is not None:
        index, key, message = misplaced
        raise SpecError(f"stages[{index}].{key}: {message}", where=source.where(("stages", index, *key.split("."))))


def load_pipeline(path: Path | str, env: Mapping[str, str], project_dir: Path | None = None) -> LoadedPipeline:
    """Load, interpolate and validate ``path``; raise SpecError (exit 2) on the first problem.

    ``project_dir`` (default: the working directory) is where a release finds the pipeline's Blueprint."""
    source = load_yaml(path)
    raw = source.data
    if raw is None:
        raise SpecError("empty file; expected a mapping with version, name, targets and stages", where=source.source)
    if not isinstance(raw, dict):
        raise SpecError(
            f"expected a mapping with version, name, targets and stages at the top level; got {type(raw).__name__}",
            where=source.where(()),
        )
    data, secrets = _interpolate(raw, env, source)
    try:
        spec = Pipeline.model_validate(data)
    except ValidationError as exc:
        raise _validation_error(exc, source, Pipeline) from None
    params: dict[str, Any] = {}
    types_known = known_types()
    for index, stage in enumerate(spec.stages):
        if stage.type not in types_known:
            raise SpecError(
                f"stages[{index}].type: unknown stage type '{stage.type}'; expected one of: {', '.join(types_known)}",
                where=source.where(("stages", index, "type")),
            )
        stage_cls = get_stage(stage.type)
        try:
            stage_params = stage_cls.Params.model_validate(stage.with_)
        except ValidationError as exc:
            raise _validation_error(exc, source, stage_cls.Params, ("stages", index, "with")) from None
        params.setdefault(stage.id, stage_params)
    _check_cross_references(spec, params, source)
    check_service_kinds(spec, params, source.where)
    params = bind_blueprints(spec, params, project_dir or Path.cwd(), source.where)
    return LoadedPipeline(Path(path), spec, params, frozenset(s for s in secrets if s), source)
