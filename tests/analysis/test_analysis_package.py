"""The analysis package's shape: public names, one job per module, a pure domain library, scipy loaded lazily."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import deploypipe.analysis as package

MODULES = [info.name for info in pkgutil.iter_modules(package.__path__)]
FORBIDDEN = ("deploypipe.stages", "deploypipe.engine", "deploypipe.render", "deploypipe.commands", "httpx")


def test_every_name_in_all_exists_in_each_module() -> None:
    for module in [package, *(importlib.import_module(f"{package.__name__}.{name}") for name in MODULES)]:
        assert hasattr(module, "__all__"), module.__name__
        assert [name for name in module.__all__ if not hasattr(module, name)] == [], module.__name__


def test_each_module_says_its_one_job_in_its_first_docstring_line_and_stays_short() -> None:
    for path in Path(package.__path__[0]).glob("*.py"):
        text = path.read_text(encoding="utf-8")
        doc = ast.get_docstring(ast.parse(text))
        assert doc and doc.splitlines()[0].endswith("."), path.name
        assert len(text.splitlines()) <= 300, f"{path.name} has {len(text.splitlines())} lines"


def test_the_analysis_imports_no_stage_engine_render_or_http_code() -> None:
    for path in Path(package.__path__[0]).glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not [n for n in names if n.startswith(FORBIDDEN)], (path.name, names)


def test_importing_the_analysis_does_not_load_scipy_or_numpy() -> None:
    code = "import sys, deploypipe.analysis; print(sorted({'scipy', 'numpy'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
