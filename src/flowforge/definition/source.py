"""Reading definition text (YAML, and JSON as YAML) into plain data with the line of every path.

Data are built from PyYAML's node tree rather than by its constructor, to record lines and to
refuse duplicate keys (which ``yaml.safe_load`` silently overwrites). Timestamps stay strings:
a definition is plain JSON-compatible data.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from flowforge.errors import DefinitionError, Problem

__all__ = ["LineMap", "SourcePath", "format_location", "load_source", "parse_text"]

SourcePath = tuple[str | int, ...]
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_YAML_TAG = "tag:yaml.org,2002:"
_PLAIN_SCALARS = {f"{_YAML_TAG}{t}" for t in ("null", "bool", "int", "float", "str")}


def format_location(path: Iterable[Any]) -> str:
    """``("blocks", 2, "depends_on", 0)`` -> ``blocks[2].depends_on[0]``."""
    text = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            text += f"[{part}]"
        elif isinstance(part, str) and _IDENTIFIER.match(part):
            text += f".{part}" if text else part
        else:
            text += f"[{str(part)!r}]"
    return text


@dataclass(frozen=True)
class LineMap:
    """The 1-based source line of every path, and the problems found while reading."""

    lines: dict[SourcePath, int] = field(default_factory=dict)
    problems: tuple[Problem, ...] = ()

    def line_for(self, path: Iterable[Any]) -> int | None:
        """The line of ``path``, else of its nearest ancestor that has one."""
        key = tuple(path)
        while True:
            line = self.lines.get(key)
            if line is not None or not key:
                return line
            key = key[:-1]


def load_source(path: str | Path) -> tuple[Any, LineMap]:
    """Read and parse a definition file; a file that cannot be read is a ``DefinitionError``."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise DefinitionError([Problem("", f"cannot read the file: {reason}")], str(path)) from None
    return parse_text(text, str(path))


def parse_text(text: str, name: str | None = None) -> tuple[Any, LineMap]:
    """Parse YAML or JSON text. A syntax error raises ``DefinitionError`` with its line.

    Duplicate keys and unsupported tags do not raise: they are in ``LineMap.problems`` so that
    validation reports them together with every other problem.
    """
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as error:
        raise DefinitionError([_syntax_problem(error)], name) from None
    except yaml.YAMLError as error:
        raise DefinitionError([Problem("", f"YAML syntax error: {error}")], name) from None
    builder = _Builder()
    data = None if node is None else builder.build(node, ())
    return data, LineMap(builder.lines, tuple(builder.problems))


def _syntax_problem(error: yaml.MarkedYAMLError) -> Problem:
    mark = error.problem_mark or error.context_mark
    message = " ".join(part for part in (error.context, error.problem) if part)
    return Problem("", f"YAML syntax error: {message}", None if mark is None else mark.line + 1)


class _Builder:
    def __init__(self) -> None:
        self.lines: dict[SourcePath, int] = {}
        self.problems: list[Problem] = []
        self._constructor = yaml.SafeLoader("")

    def build(self, node: yaml.Node, path: SourcePath) -> Any:
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        return self._scalar(node, path)

    def _scalar(self, node: yaml.Node, path: SourcePath) -> Any:
        if node.tag in _PLAIN_SCALARS:
            return self._constructor.construct_object(node)
        if node.tag == f"{_YAML_TAG}timestamp":
            return node.value
        self._problem(path, node, f"unsupported YAML tag '{node.tag}'")
        return node.value

    def _mapping(self, node: yaml.MappingNode, path: SourcePath) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        first_line: dict[Any, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == f"{_YAML_TAG}merge":
                self._merge(result, value_node, path)
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self._problem(path, key_node, "a mapping key must be a plain value")
                continue
            key = self._scalar(key_node, path)
            line = key_node.start_mark.line + 1
            if key in first_line:
                message = f"duplicate key '{key}' (first on line {first_line[key]})"
                self._problem((*path, key), key_node, message)
                continue
            first_line[key] = line
            self.lines[(*path, key)] = line
            result[key] = self.build(value_node, (*path, key))
        return result

    def _merge(self, result: dict[Any, Any], node: yaml.Node, path: SourcePath) -> None:
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        for source in sources:
            merged = self.build(source, path)
            if not isinstance(merged, dict):
                self._problem(path, source, "'<<' must merge a mapping")
                continue
            for key, value in merged.items():
                result.setdefault(key, value)

    def _problem(self, path: SourcePath, node: yaml.Node, message: str) -> None:
        line = node.start_mark.line + 1
        self.problems.append(Problem(format_location(path), message, line))
