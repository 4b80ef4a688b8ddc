"""The exported JSON Schema validates real pipelines; the CLI lists every task with help; __all__ is honest."""

from __future__ import annotations

import importlib
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

import deploypipe
from deploypipe.core.yamlio import load_yaml
from deploypipe.engine.schema import pipeline_schema

ROOT = Path(__file__).resolve().parents[2]


def test_schema_accepts_every_shipped_pipeline_and_rejects_an_unknown_stage_type():
    schema = pipeline_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    shipped = sorted((ROOT / "pipelines").glob("*.yaml"))
    for path in shipped:
        errors = list(validator.iter_errors(load_yaml(path).data))
        assert not errors, f"{path.name}: {errors[0].message}"
    bad = {"version": 1, "name": "x", "stages": [{"id": "a", "type": "nope.nope"}]}
    assert list(validator.iter_errors(bad))


def test_schema_checks_stage_params_by_type():
    validator = jsonschema.Draft202012Validator(pipeline_schema())
    bad = {"version": 1, "name": "x", "stages": [{"id": "a", "type": "shell.run", "with": {"comand": "x"}}]}
    assert any("command" in e.message or "comand" in e.message for e in validator.iter_errors(bad))


def test_invoke_lists_every_task_with_help():
    out = subprocess.run([sys.executable, "-m", "invoke", "--list"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for name in ("deploy", "plan", "rollback", "history", "schema", "lint", "clean", "test"):
        assert f"  {name} " in out
    helped = subprocess.run([sys.executable, "-m", "invoke", "--help", "deploy"], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout
    assert "--wait-lock" in helped and "--resume" in helped and "--json" in helped


@pytest.mark.parametrize("module_name", sorted(
    m.name for m in pkgutil.walk_packages(deploypipe.__path__, "deploypipe.") if not m.name.endswith("__main__")))
def test_all_lists_only_names_the_module_defines(module_name):
    module = importlib.import_module(module_name)
    names = getattr(module, "__all__", None)
    if names is None:
        return
    missing = [name for name in names if not hasattr(module, name)]
    assert not missing, f"{module_name}.__all__ names undefined {missing}"


def test_schema_task_writes_valid_json(tmp_path):
    target = tmp_path / "schema.json"
    subprocess.run([sys.executable, "-m", "invoke", "schema", "--output", str(target)], cwd=ROOT, check=True)
    assert json.loads(target.read_text())["title"] == "deploypipe pipeline"


def test_production_pipeline_example_plans_cleanly_with_its_secrets_masked():
    import os

    env = {**os.environ, "RENDER_API_KEY": "rnd_plan_key_123456", "DATABASE_URL": "postgresql://app:pw-plan-99@db/app",
           "CI": "true"}
    result = subprocess.run([sys.executable, "-m", "invoke", "plan", "--pipeline", "pipelines/production.yaml", "--json"],
                            cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    steps = json.loads(result.stdout)
    assert [s["type"] for s in steps][:2] == ["lint.blueprint", "render.preflight"]
    assert {"db.backup", "db.dry_run", "db.migrate", "render.release", "verify.health", "notify.webhook"} <= {s["type"] for s in steps}
    assert "pw-plan-99" not in result.stdout + result.stderr
