"""The emulator package's public surface: every ``__all__`` name exists, and each module declares its own."""

from __future__ import annotations

import importlib
import pkgutil

import deploypipe.emulator as package


def test_every_name_in_all_is_importable_from_each_emulator_module():
    modules = [package] + [importlib.import_module(f"deploypipe.emulator.{info.name}")
                           for info in pkgutil.iter_modules(package.__path__) if info.name != "__main__"]
    for module in modules:
        assert hasattr(module, "__all__"), f"{module.__name__} has no __all__"
        missing = [name for name in module.__all__ if not hasattr(module, name)]
        assert missing == [], f"{module.__name__}.__all__ names missing objects: {missing}"


def test_each_module_says_what_it_does_in_its_first_docstring_line():
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"deploypipe.emulator.{info.name}") if info.name != "__main__" else None
        if module is not None:
            assert module.__doc__ and module.__doc__.strip().splitlines()[0].endswith("."), module.__name__


def test_a_blueprint_with_fields_the_local_render_ignores_loads_with_warnings(tmp_path):
    from structlog.testing import capture_logs

    from deploypipe.emulator import load_blueprint

    path = tmp_path / "render.yaml"
    path.write_text("previews: {generation: off}\nservices:\n  - type: web\n    name: api\n    startCommand: run\n"
                    "    numInstances: 2\n    cronish: 1\n    envVars:\n      - {key: X, sync: false}\n"
                    "databases:\n  - {name: db, plan: pro}\n")
    with capture_logs() as logs:
        blueprint = load_blueprint(path)
    assert [s.name for s in blueprint.services] == ["api"] and [d.name for d in blueprint.databases] == ["db"]
    ignored = [(e.get("where"), e.get("fields")) for e in logs if e["event"] == "blueprint_fields_ignored"]
    assert ignored == [("top level", ["previews"]), ("service api", ["cronish"])]
    assert [e["key"] for e in logs if e["event"] == "blueprint_env_var_unset"] == ["X"]


def test_a_blueprint_service_without_a_name_is_an_error_naming_the_key(tmp_path):
    import pytest

    from deploypipe.emulator import load_blueprint
    from deploypipe.errors import SpecError

    path = tmp_path / "render.yaml"
    path.write_text("services:\n  - type: web\n    startCommand: run\n")
    with pytest.raises(SpecError, match="services.0.name: Field required"):
        load_blueprint(path)
