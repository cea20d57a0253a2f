"""``transform``: outputs its rendered ``value``."""

from __future__ import annotations

from typing import Any

from flowforge.definition.builtin_specs import TransformSpec


class TransformBlock(TransformSpec):
    async def run(self, ctx: Any) -> Any:
        return self.value
