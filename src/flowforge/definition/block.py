"""Block base classes: the fields every block has, and the base of every block type."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from flowforge.definition.fields import BLOCK_ID_PATTERN, Duration, Templated, TriggerRule
from flowforge.definition.retry import RetryPolicy
from flowforge.errors import NonRetryableError

__all__ = ["COMMON_FIELDS", "Block", "BlockSpec", "Templated"]


def _one_or_many(value: Any) -> Any:
    return (value,) if isinstance(value, str) else value


BlockIds = Annotated[tuple[str, ...], BeforeValidator(_one_or_many)]


class BlockSpec(BaseModel):
    """The fields every block has (SPEC 2.1). A block type adds its own fields in a subclass.

    Type-specific fields are templates at definition time: give non-string fields the type
    ``Templated[T]`` so that they accept ``"{{ … }}"`` when declared and a ``T`` once rendered.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    type_name: ClassVar[str] = ""
    raw_fields: ClassVar[frozenset[str]] = frozenset()
    """Type-specific fields that are not templates (kept as declared)."""
    expression_fields: ClassVar[frozenset[str]] = frozenset()
    """Raw fields holding a bare expression (``switch.value``, ``loop.until``)."""

    id: str = Field(pattern=BLOCK_ID_PATTERN)
    type: str
    depends_on: BlockIds = ()
    if_: str | None = Field(None, alias="if")
    trigger_rule: TriggerRule = "all_success"
    retry: RetryPolicy | None = None
    timeout: Duration | None = None
    continue_on_failure: bool = False
    description: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _default_type(cls, data: Any) -> Any:
        if cls.type_name and isinstance(data, Mapping) and "type" not in data:
            return {**data, "type": cls.type_name}
        return data

    @field_validator("type")
    @classmethod
    def _type_matches_class(cls, value: str) -> str:
        if cls.type_name and value != cls.type_name:
            raise ValueError(f"must be '{cls.type_name}' for {cls.__name__}")
        return value

    def template_fields(self) -> dict[str, Any]:
        """The type-specific fields with their values as declared (templates unrendered)."""
        return {
            name: getattr(self, name)
            for name in type(self).model_fields
            if name not in COMMON_FIELDS
        }

    def common_fields(self) -> dict[str, Any]:
        """The fields every block has, by field name (``if_``, not ``if``)."""
        return {name: getattr(self, name) for name in COMMON_FIELDS}

    def with_fields(self, rendered: Mapping[str, Any]) -> Self:
        """A validated copy whose type-specific fields are ``rendered``.

        Raises ``NonRetryableError`` (error type ``InvalidInput``) when a rendered value does not
        fit its field, e.g. a duration template that rendered to ``"soon"``.
        """
        try:
            return type(self).model_validate({**self.common_fields(), **rendered})
        except ValidationError as error:
            details = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or self.id}: {e['msg']}"
                for e in error.errors(include_url=False)
            )
            raise NonRetryableError(
                f"block '{self.id}': rendered fields are invalid: {details}",
                error_type="InvalidInput",
            ) from None


COMMON_FIELDS: frozenset[str] = frozenset(BlockSpec.model_fields)
COMMON_ALIASES: frozenset[str] = frozenset(
    field.alias or name for name, field in BlockSpec.model_fields.items()
)


class Block(BlockSpec):
    """The base of every block type, built-in or custom.

    Declare the type's fields as pydantic fields and implement ``run``; register the class with
    ``@flowforge.block_type("name")`` or the entry-point group ``flowforge.blocks``. The engine
    renders the fields' templates and calls ``run`` on a validated instance.
    """

    async def run(self, ctx: Any) -> Any:
        """Execute one attempt and return the block's output (JSON-serialisable)."""
        raise NotImplementedError(f"block type '{self.type}' cannot run: no run() method")
