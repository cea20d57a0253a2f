"""Field models of the built-in block types. ``flowforge.blocks`` subclasses them with ``run``."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, model_validator

from flowforge.definition.block import Block
from flowforge.definition.fields import Duration, Templated, UtcDatetime

FUNCTION_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_<][A-Za-z0-9_.<>]*$"


class NoopSpec(Block):
    """Does nothing; output null. Useful to join branches."""

    type_name: ClassVar[str] = "noop"


class TransformSpec(Block):
    """Output the rendered ``value``."""

    type_name: ClassVar[str] = "transform"

    value: Any


class PythonSpec(Block):
    """Call ``function`` ("module:attr") with ``args``; output its return value."""

    type_name: ClassVar[str] = "python"
    raw_fields: ClassVar[frozenset[str]] = frozenset({"function"})

    function: str = Field(pattern=FUNCTION_PATTERN)
    args: dict[str, Any] = Field(default_factory=dict)


class FailSpec(Block):
    """Fail with error type ``Failed`` and ``message``."""

    type_name: ClassVar[str] = "fail"

    message: str = "failed"


class WaitSpec(Block):
    """A durable timer: wait ``duration``, or until ``until`` (ISO-8601; UTC when no zone)."""

    type_name: ClassVar[str] = "wait"

    duration: Templated[Duration] | None = None
    until: Templated[UtcDatetime] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> WaitSpec:
        if (self.duration is None) == (self.until is None):
            raise ValueError("give exactly one of 'duration' or 'until'")
        return self


BUILTIN_SPECS: dict[str, type[Block]] = {
    "noop": NoopSpec,
    "transform": TransformSpec,
    "python": PythonSpec,
    "fail": FailSpec,
    "wait": WaitSpec,
}
