"""Run parameters: checked against their specs before a run exists, defaults applied."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from flowforge.definition.models import SECRET_SOURCE, ParameterSpec
from flowforge.definition.source import format_location
from flowforge.errors import ParameterError, Problem

__all__ = ["check_value", "parse_cli_params", "validate_parameters"]

_INTEGER = re.compile(r"^[+-]?\d+$")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_BOOLEANS = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}
_TYPE_WORDS = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
    "object": "a mapping",
}
_Missing = object()


def validate_parameters(
    specs: Mapping[str, ParameterSpec], given: Mapping[str, Any], *, from_strings: bool = False
) -> dict[str, Any]:
    """The run's parameters: ``given`` checked (all problems at once) with defaults applied.

    With ``from_strings`` (``-p k=v`` on the command line) string values are converted where
    that is unambiguous: ``"3"`` for an integer, ``yes`` for a boolean, JSON for a list.
    Secret parameters hold their source (``env:NAME``/``file:/path``), never the secret.
    """
    problems: list[Problem] = []
    values: dict[str, Any] = {}
    for name in given:
        if name not in specs:
            known = ", ".join(specs) or "none"
            problems.append(Problem(f"params.{name}", f"unknown parameter (known: {known})"))
    for name, spec in specs.items():
        value = given.get(name, _Missing)
        if value is _Missing:
            if spec.required:
                problems.append(Problem(f"params.{name}", "required parameter is missing"))
            values[name] = spec.source if spec.type == "secret" else spec.default
            continue
        if from_strings and isinstance(value, str):
            value = _from_string(spec.type, value)
        problems.extend(check_value(spec, value, ("params", name)))
        values[name] = _normalise(spec.type, value)
    if problems:
        raise ParameterError(problems)
    return values


def check_value(
    spec: ParameterSpec | Mapping[str, Any], value: Any, path: tuple[Any, ...]
) -> list[Problem]:
    """Problems of ``value`` for ``spec`` (a spec, or an ``items`` mapping), located at ``path``."""
    kind = spec.type if isinstance(spec, ParameterSpec) else spec.get("type")
    enum = spec.enum if isinstance(spec, ParameterSpec) else spec.get("enum")
    items = spec.items if isinstance(spec, ParameterSpec) else spec.get("items")
    where = format_location(path)
    if value is None and isinstance(spec, ParameterSpec) and not spec.required:
        return []
    if kind == "secret":
        if isinstance(value, str) and SECRET_SOURCE.match(value):
            return []
        return [Problem(where, "secret parameters take a source like env:NAME, not a value")]
    if not _has_type(kind, value):
        expected = _TYPE_WORDS.get(str(kind), str(kind))
        return [Problem(where, f"must be {expected}, got {describe(value)}")]
    if enum is not None and value not in enum:
        allowed = ", ".join(json.dumps(e) for e in enum)
        return [Problem(where, f"must be one of {allowed}, got {describe(value)}")]
    if kind == "array" and isinstance(items, Mapping):
        found: list[Problem] = []
        for index, item in enumerate(value):
            found.extend(check_value(items, item, (*path, index)))
        return found
    return []


def parse_cli_params(pairs: list[str]) -> dict[str, str]:
    """``["n=3", "s=a=b"]`` -> ``{"n": "3", "s": "a=b"}``; problems raise ``ParameterError``."""
    problems: list[Problem] = []
    result: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            problems.append(Problem("params", f"{pair!r} is not NAME=VALUE"))
        elif name in result:
            problems.append(Problem(f"params.{name}", "given more than once"))
        else:
            result[name] = value
    if problems:
        raise ParameterError(problems)
    return result


def describe(value: Any) -> str:
    """A short description of a value for messages: ``'abc' (a string)``."""
    kind = {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        tuple: "a list",
        dict: "a mapping",
        type(None): "null",
    }.get(type(value), type(value).__name__)
    if value is None:
        return "null"
    text = repr(value) if not isinstance(value, bool) else str(value).lower()
    if len(text) > 40:
        return kind
    return f"{text} ({kind})"


def _has_type(kind: Any, value: Any) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
    if kind == "number":
        return (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and (not isinstance(value, float) or math.isfinite(value))
        )
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "array":
        return isinstance(value, (list, tuple))
    if kind == "object":
        return isinstance(value, Mapping)
    return True


def _normalise(kind: str, value: Any) -> Any:
    if kind == "integer" and isinstance(value, float):
        return int(value)
    if kind == "array" and isinstance(value, tuple):
        return list(value)
    if kind == "object" and isinstance(value, Mapping) and not isinstance(value, dict):
        return dict(value)
    return value


def _from_string(kind: str, text: str) -> Any:
    stripped = text.strip()
    if kind == "integer" and _INTEGER.match(stripped):
        return int(stripped)
    if kind == "number" and _NUMBER.match(stripped):
        number = float(stripped)
        return int(number) if _INTEGER.match(stripped) else number
    if kind == "boolean" and stripped.lower() in _BOOLEANS:
        return _BOOLEANS[stripped.lower()]
    if kind in ("array", "object"):
        try:
            return json.loads(stripped)
        except ValueError:
            return text
    return text
