"""Reusable field types of definition models: durations, templated values, trigger rules."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, BeforeValidator, ValidatorFunctionWrapHandler, WrapValidator

from flowforge.definition.durations import parse_duration

T = TypeVar("T")

TriggerRule = Literal[
    "all_success", "all_done", "none_failed", "one_success", "one_failed", "all_failed"
]

BLOCK_ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
WORKFLOW_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"


class DurationMarker:
    """Metadata marking a field as a duration, so that it is written back as ``1m30s``."""

    def __repr__(self) -> str:
        return "DURATION"


DURATION = DurationMarker()


def _to_seconds(value: Any) -> Any:
    if value is None:
        return None
    return parse_duration(value)


Duration = Annotated[float, BeforeValidator(_to_seconds), DURATION]
"""Seconds; accepts ``500ms``, ``30s``, ``10m``, ``1h30m``, ``2d`` or a number."""


def is_template_text(value: object) -> bool:
    """Whether ``value`` is a string holding a Jinja template (``{{`` or ``{%``)."""
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def _allow_template(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    if is_template_text(value):
        return value
    return handler(value)


Templated = Annotated[T, WrapValidator(_allow_template)]
"""``Templated[int]``: a template string at definition time, an ``int`` once rendered."""


def _check_json_schema(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is not None:
        from jsonschema import exceptions, validators

        try:
            validators.validator_for(value).check_schema(value)
        except exceptions.SchemaError as error:
            raise ValueError(f"not a valid JSON Schema: {error.message}") from None
    return value


JsonSchema = Annotated[dict[str, Any], AfterValidator(_check_json_schema)]
"""A JSON Schema, checked against its metaschema when the definition is validated."""


def _assume_utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_assume_utc)]
"""An ISO-8601 date-time; one without a time zone is taken as UTC."""
