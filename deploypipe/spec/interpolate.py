"""``${VAR}`` and ``${VAR:-default}`` interpolation of pipeline strings from the environment.

``$${`` stands for a literal ``${``. Interpolation records which values came
from secret variables so the run's Redactor can mask them everywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from deploypipe.core.redact import SECRET_NAME_PATTERN

__all__ = ["Interpolator", "MissingVariable", "VARIABLE_PATTERN"]

VARIABLE_PATTERN = re.compile(r"\$\$\{|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")


class MissingVariable(Exception):
    def __init__(self, name: str):
        self.name = name
        super().__init__(name)


@dataclass
class Interpolator:
    """Resolves variables against ``env`` and the pipeline's declared ``variables``.

    ``declared`` maps names to ``(default, secret)``; ``secret_values`` collects
    the resolved values of secret variables.
    """

    env: Mapping[str, str]
    declared: Mapping[str, tuple[str | None, bool]] = field(default_factory=dict)
    secret_values: set[str] = field(default_factory=set)
    used: set[str] = field(default_factory=set)

    def is_secret(self, name: str) -> bool:
        declared = self.declared.get(name)
        return bool(declared and declared[1]) or bool(SECRET_NAME_PATTERN.search(name))

    def resolve(self, name: str, inline_default: str | None) -> str:
        self.used.add(name)
        if name in self.env:
            value = self.env[name]
        elif inline_default is not None:
            value = inline_default
        elif self.declared.get(name, (None, False))[0] is not None:
            value = self.declared[name][0]  # type: ignore[assignment]
        else:
            raise MissingVariable(name)
        if self.is_secret(name):
            self.secret_values.add(value)
        return value

    def text(self, value: str) -> str:
        def replace(match: re.Match[str]) -> str:
            if match.group(0) == "$${":
                return "${"
            return self.resolve(match["name"], match["default"])

        return VARIABLE_PATTERN.sub(replace, value)

    def walk(self, data: Any, path: tuple[Any, ...], on_missing: Callable[[str, tuple[Any, ...]], None]) -> Any:
        """Interpolate every string in ``data``; ``on_missing(name, path)`` is called for an unset variable."""
        if isinstance(data, str):
            try:
                return self.text(data)
            except MissingVariable as exc:
                on_missing(exc.name, path)
                return data
        if isinstance(data, dict):
            return {k: self.walk(v, path + (k,), on_missing) for k, v in data.items()}
        if isinstance(data, list):
            return [self.walk(v, path + (i,), on_missing) for i, v in enumerate(data)]
        return data
