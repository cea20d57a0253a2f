"""Writing definitions back as plain data, YAML and JSON (defaults omitted, durations as text)."""

from __future__ import annotations

import json
import typing
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from flowforge.definition.durations import format_duration
from flowforge.definition.fields import DurationMarker

__all__ = ["dump_model", "to_json", "to_yaml"]

_ALWAYS = frozenset({"id", "type"})


def dump_model(model: BaseModel) -> dict[str, Any]:
    """Plain data of a definition model: aliases (``if``), defaults left out, ``1m30s``."""
    result: dict[str, Any] = {}
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        if name not in _ALWAYS and not info.is_required() and _is_default(value, info):
            continue
        result[info.alias or name] = _plain(value, _is_duration(info))
    return result


def _is_default(value: Any, info: FieldInfo) -> bool:
    default = info.get_default(call_default_factory=True)
    return type(value) is type(default) and bool(value == default)


def _is_duration(info: FieldInfo) -> bool:
    return any(isinstance(item, DurationMarker) for item in info.metadata) or _marked(
        info.annotation
    )


def _marked(annotation: Any) -> bool:
    # ``Duration | None`` keeps the marker inside the union's ``Annotated`` member.
    return any(
        isinstance(arg, DurationMarker) or _marked(arg) for arg in typing.get_args(annotation)
    )


def _plain(value: Any, duration: bool = False) -> Any:
    if isinstance(value, BaseModel):
        return dump_model(value)
    if duration and isinstance(value, (int, float)) and not isinstance(value, bool):
        return format_duration(value)
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    return value


class _Dumper(yaml.SafeDumper):
    pass


def _represent_text(dumper: yaml.SafeDumper, text: str) -> yaml.Node:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _represent_text)


def to_yaml(data: Any) -> str:
    """YAML text, keys in definition order, multi-line strings as blocks."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


def to_json(data: Any, *, indent: int | None = 2) -> str:
    """JSON text."""
    return json.dumps(data, indent=indent, ensure_ascii=False)
