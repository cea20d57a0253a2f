"""``noop``: does nothing, outputs null. A join point or a placeholder."""

from __future__ import annotations

from typing import Any

from flowforge.definition.builtin_specs import NoopSpec


class NoopBlock(NoopSpec):
    async def run(self, ctx: Any) -> None:
        return None
