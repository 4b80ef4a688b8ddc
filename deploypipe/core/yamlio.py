"""The one place deploypipe reads YAML: safe loading that keeps line numbers.

``load_yaml(path)`` returns the data and a map from key paths (tuples of keys
and list indexes) to 1-based line numbers, so every later error can name the
file and line of the offending key. Only PyYAML's safe loader is used: no
tags, no Python objects. Hostile input is bounded: a file larger than
``MAX_BYTES`` or a document whose aliases expand past ``MAX_NODES`` nodes (a
"billion laughs" bomb) is refused at once with one line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from deploypipe.errors import SpecError

__all__ = ["MAX_BYTES", "MAX_NODES", "LoadedYaml", "load_yaml", "parse_yaml"]

Path_ = tuple[Any, ...]
#: the largest YAML file deploypipe reads (pipelines and Blueprints are a few KiB)
MAX_BYTES = 1_048_576
#: the most nodes a document may expand to, aliases included
MAX_NODES = 20_000


@dataclass(frozen=True)
class LoadedYaml:
    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)
    source: str = "<string>"
    columns: dict[Path_, int] = field(default_factory=dict)

    def line_of(self, path: Path_) -> int | None:
        """Line of the deepest known prefix of ``path``."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return None

    def column_of(self, path: Path_) -> int | None:
        """1-based column of ``path`` itself, when known."""
        return self.columns.get(tuple(path))

    def where(self, path: Path_) -> str:
        line = self.line_of(path)
        return f"{self.source}:{line}" if line else self.source


class _Builder:
    def __init__(self, source: str):
        self.source = source
        self.constructor = yaml.SafeLoader("")  # a SafeConstructor with no stream
        self.lines: dict[Path_, int] = {}
        self.columns: dict[Path_, int] = {}
        self.nodes = 0

    def build(self, node: yaml.Node, path: Path_) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise SpecError(f"the document expands to more than {MAX_NODES} nodes (aliases included); expected a "
                            "small configuration file", where=self.source,
                            hint="remove the nested anchors and aliases (a YAML alias bomb?)")
        self.lines.setdefault(path, node.start_mark.line + 1)
        self.columns.setdefault(path, node.start_mark.column + 1)
        expected_tag = {yaml.MappingNode: "tag:yaml.org,2002:map", yaml.SequenceNode: "tag:yaml.org,2002:seq"}
        if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and node.tag != expected_tag[type(node)]:
            raise SpecError(f"invalid YAML: could not determine a constructor for the tag '{node.tag}'",
                            where=f"{self.source}:{node.start_mark.line + 1}")
        if isinstance(node, yaml.MappingNode):
            own = {id(key_node) for key_node, _ in node.value}  # keys written here; merged ones (<<) may be overridden
            self.constructor.flatten_mapping(node)
            result: dict[Any, Any] = {}
            seen: set[Any] = set()
            for key_node, value_node in node.value:
                key = self.build(key_node, path + ("<key>",))
                if not isinstance(key, (str, int, float, bool)) or key is None:
                    raise SpecError(
                        f"mapping keys must be plain scalars, got {type(key).__name__}",
                        where=f"{self.source}:{key_node.start_mark.line + 1}",
                    )
                if key in seen and id(key_node) in own:
                    raise SpecError(
                        f"duplicate key '{key}'", where=f"{self.source}:{key_node.start_mark.line + 1}",
                        hint="each key may appear once in a mapping",
                    )
                if id(key_node) in own:
                    seen.add(key)
                self.lines[path + (key,)] = key_node.start_mark.line + 1
                self.columns[path + (key,)] = key_node.start_mark.column + 1
                result[key] = self.build(value_node, path + (key,))
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, path + (i,)) for i, item in enumerate(node.value)]
        return self.constructor.construct_object(node, deep=True)


def parse_yaml(text: str, source: str = "<string>") -> LoadedYaml:
    """Parse one YAML document safely, with line numbers; errors are SpecError naming the line."""
    if len(text) > MAX_BYTES:
        raise SpecError(f"document is {len(text)} characters; expected at most {MAX_BYTES}", where=source)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is None:
            return LoadedYaml(None, {}, source)
        builder = _Builder(source)
        data = builder.build(node, ())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark else ""
        problem = exc.problem or exc.context or "invalid YAML"
        raise SpecError(f"invalid YAML: {problem}", where=f"{source}{line}") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"invalid YAML: {exc}", where=source) from None
    except (ValueError, TypeError, RecursionError) as exc:  # e.g. bad timestamps, deep nesting
        raise SpecError(f"invalid YAML value: {exc}", where=source) from None
    lines = {k: v for k, v in builder.lines.items() if "<key>" not in k}
    columns = {k: v for k, v in builder.columns.items() if "<key>" not in k}
    return LoadedYaml(data, lines, source, columns)


def load_yaml(path: Path | str) -> LoadedYaml:
    """Read and parse ``path``; unreadable or undecodable files are SpecError."""
    p = Path(path)
    try:
        if p.stat().st_size > MAX_BYTES:
            raise SpecError(f"file is {p.stat().st_size} bytes; expected at most {MAX_BYTES}", where=str(p),
                            hint="pipelines and Blueprints are small files; is this the right path?")
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError("file not found", where=str(p), hint="pass an existing file with --pipeline") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read file: {exc.__class__.__name__}", where=str(p)) from None
    return parse_yaml(text, str(p))
