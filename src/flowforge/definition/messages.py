"""Turning pydantic's validation errors into problems a person understands."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError

from flowforge.definition.builtin_specs import FUNCTION_PATTERN
from flowforge.definition.fields import BLOCK_ID_PATTERN, WORKFLOW_ID_PATTERN
from flowforge.definition.parameters import describe

__all__ = ["closest", "pydantic_problems"]

Located = tuple[tuple[Any, ...], str]

_PATTERNS = {
    BLOCK_ID_PATTERN: (
        "is not a valid block id: use letters, digits and '_', not starting with a digit"
    ),
    WORKFLOW_ID_PATTERN: (
        "is not a valid workflow id: use lowercase letters, digits, '-' and '_', "
        "starting with a letter or a digit"
    ),
    FUNCTION_PATTERN: "is not an importable 'module:function' name",
    r"^https?://\S+$": "is not an http(s) URL",
}
_TYPE_WORDS = {
    "string": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "list": "a list",
    "tuple": "a list",
    "set": "a list",
    "dict": "a mapping",
    "model": "a mapping",
    "model_attributes": "a mapping",
    "datetime": "an ISO-8601 date and time such as 2030-01-01T09:00:00Z",
    "date": "an ISO-8601 date such as 2030-01-01",
    "timezone_aware": "a date and time with a time zone",
}


def closest(name: str, known: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` when a known name is close to ``name``, else ``""``."""
    match = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f"; did you mean '{match[0]}'?" if match else ""


def pydantic_problems(
    error: ValidationError, prefix: tuple[Any, ...], known_fields: Iterable[str] = ()
) -> list[Located]:
    """One ``(path, message)`` per pydantic error, the path starting with ``prefix``."""
    known = tuple(known_fields)
    found: list[Located] = []
    for item in error.errors(include_url=False):
        loc = tuple(part for part in item["loc"] if part != "[key]")
        found.append(((*prefix, *loc), _message(item, known)))
    return found


def _message(item: Any, known: tuple[str, ...]) -> str:
    kind: str = item["type"]
    context: dict[str, Any] = item.get("ctx") or {}
    value = item.get("input")
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        name = str(item["loc"][-1])
        return f"unknown field '{name}'{closest(name, known)}"
    if kind in ("value_error", "assertion_error"):
        return str(context.get("error", item["msg"]))
    if kind == "literal_error":
        return f"must be one of {context.get('expected')}, got {describe(value)}"
    if kind == "string_pattern_mismatch":
        pattern = str(context.get("pattern", ""))
        reason = _PATTERNS.get(pattern, f"does not match {pattern}")
        return f"{value!r} {reason}"
    if kind in ("greater_than_equal", "greater_than"):
        bound = context.get("ge", context.get("gt"))
        return f"must be at least {bound}, got {describe(value)}"
    if kind in ("too_short", "string_too_short"):
        return "must not be empty"
    for suffix in ("_type", "_parsing", "_from_datetime_parsing"):
        word = _TYPE_WORDS.get(kind.removesuffix(suffix)) if kind.endswith(suffix) else None
        if word is not None:
            return f"must be {word}, got {describe(value)}"
    message = str(item["msg"])
    return message[:1].lower() + message[1:]
