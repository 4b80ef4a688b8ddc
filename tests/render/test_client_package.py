"""The render package's public surface: honest ``__all__``, a first docstring line per module, modules kept small."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import pytest

import deploypipe.emulator
import deploypipe.render

MODULES = [importlib.import_module(f"deploypipe.render.{info.name}")
           for info in pkgutil.iter_modules(deploypipe.render.__path__)]


@pytest.mark.parametrize("module", [deploypipe.render, *MODULES], ids=lambda m: m.__name__)
def test_every_name_in_all_exists_and_the_first_docstring_line_says_the_job(module):
    assert [name for name in module.__all__ if not hasattr(module, name)] == []
    assert module.__doc__ and module.__doc__.strip().splitlines()[0].endswith(".")


@pytest.mark.parametrize("package", [deploypipe.render, deploypipe.emulator], ids=lambda p: p.__name__)
def test_no_module_grows_far_past_300_lines(package):
    sizes = {path.name: len(path.read_text().splitlines()) for path in Path(package.__path__[0]).glob("*.py")}
    assert {name: size for name, size in sizes.items() if size > 310} == {}
