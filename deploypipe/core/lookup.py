"""Follow a dotted path (``a.b.0.c``) through pydantic models, mappings and lists."""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from pydantic import BaseModel

__all__ = ["lookup"]


def lookup(value: Any, path: str | Iterable[str]) -> Any:
    """The value at ``path`` (model fields, mapping keys, list indexes); KeyError naming the path when absent."""
    parts = path.split(".") if isinstance(path, str) else list(path)
    current = value
    for part in parts:
        if isinstance(current, BaseModel) and part in type(current).model_fields:
            current = getattr(current, part)
        elif isinstance(current, Mapping) and part in current:
            current = current[part]
        elif isinstance(current, (list, tuple)) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            raise KeyError(".".join(parts))
    return current
