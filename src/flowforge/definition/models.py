"""The workflow definition model: parameters, settings, blocks, outputs (pydantic, immutable)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializeAsAny,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from flowforge.definition.block import BlockSpec
from flowforge.definition.fields import WORKFLOW_ID_PATTERN, Duration, TriggerRule
from flowforge.definition.registry import BlockTypeRegistry, default_registry
from flowforge.definition.retry import RetryPolicy

__all__ = [
    "PARAMETER_TYPES",
    "ParameterSpec",
    "RetryPolicy",
    "Settings",
    "TriggerRule",
    "WorkflowSpec",
]

ParameterType = Literal["string", "integer", "number", "boolean", "array", "object", "secret"]
PARAMETER_TYPES: tuple[str, ...] = (
    "string",
    "integer",
    "number",
    "boolean",
    "array",
    "object",
    "secret",
)
SECRET_SOURCE = re.compile(r"^(env:[A-Za-z_][A-Za-z0-9_]*|file:.+)$")
_FROZEN = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ParameterSpec(BaseModel):
    """A run parameter. ``secret`` parameters name a ``source`` (``env:NAME`` or ``file:/path``)."""

    model_config = _FROZEN

    type: ParameterType
    required: bool = False
    default: Any = None
    items: dict[str, Any] | None = None
    enum: list[Any] | None = None
    description: str | None = None
    source: str | None = None

    @field_validator("items")
    @classmethod
    def _items_have_a_type(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        unknown = set(value) - {"type", "items", "enum"}
        if unknown:
            raise ValueError(f"items: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
        if value.get("type") not in PARAMETER_TYPES or value.get("type") == "secret":
            allowed = ", ".join(t for t in PARAMETER_TYPES if t != "secret")
            raise ValueError(f"items needs a 'type', one of: {allowed}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ParameterSpec:
        if self.type == "secret":
            if self.source is None:
                raise ValueError("a secret parameter needs a source: env:NAME or file:/path")
            if not SECRET_SOURCE.match(self.source):
                raise ValueError(f"source {self.source!r} is not env:NAME or file:/path")
            if self.default is not None:
                raise ValueError("a secret parameter takes a source, not a default")
        elif self.source is not None:
            raise ValueError("'source' is only for parameters of type secret")
        if self.items is not None and self.type != "array":
            raise ValueError("'items' is only for parameters of type array")
        return self


class Settings(BaseModel):
    """Run-wide settings; all optional."""

    model_config = _FROZEN

    timeout: Duration | None = None
    max_concurrency: int | None = Field(None, ge=1)
    fail_fast: bool = False
    retry: RetryPolicy | None = None
    webhook_url: str | None = Field(None, pattern=r"^https?://\S+$")


def output_key(value: Any) -> Any:
    """Output names are JSON object keys: ``1`` and ``true`` become ``"1"`` and ``"true"``."""
    if isinstance(value, (bool, int, float)) or value is None:
        return json.dumps(value)
    return value


OutputName = Annotated[str, BeforeValidator(output_key), Field(min_length=1)]


class WorkflowSpec(BaseModel):
    """A validated workflow definition. Build it with :func:`flowforge.definition.validate`."""

    model_config = _FROZEN

    id: str = Field(pattern=WORKFLOW_ID_PATTERN)
    title: str | None = None
    description: str | None = None
    parameters: dict[str, ParameterSpec] = Field(default_factory=dict)
    settings: Settings = Field(default_factory=Settings)
    blocks: tuple[SerializeAsAny[BlockSpec], ...]
    outputs: dict[OutputName, Any] | None = None

    @field_validator("blocks", mode="before")
    @classmethod
    def _validate_by_type(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, (list, tuple)):
            return value
        context = info.context if isinstance(info.context, Mapping) else {}
        registry: BlockTypeRegistry = context.get("registry") or default_registry()
        return [_block_of_its_type(item, index, registry) for index, item in enumerate(value)]

    def block(self, block_id: str) -> BlockSpec | None:
        """The block with id ``block_id``, or None."""
        return next((b for b in self.blocks if b.id == block_id), None)


def _block_of_its_type(item: Any, index: int, registry: BlockTypeRegistry) -> Any:
    if not isinstance(item, Mapping) or not isinstance(item.get("type"), str):
        return item
    cls = registry.get(item["type"])
    if cls is None:
        raise ValueError(f"blocks[{index}]: {registry.unknown_type_message(item['type'])}")
    try:
        return cls.model_validate(item)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"blocks[{index}].{where}: {first['msg']}") from None
