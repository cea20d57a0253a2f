"""``wait``: a durable timer. The block suspends; a task with a due time wakes it up."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flowforge.blocks.context import Suspend
from flowforge.definition.builtin_specs import WaitSpec
from flowforge.definition.durations import parse_duration


class WaitBlock(WaitSpec):
    async def run(self, ctx: Any) -> Suspend:
        if self.duration is not None:
            return Suspend(delay=parse_duration(self.duration))
        until = self.until
        if isinstance(until, str):
            until = datetime.fromisoformat(until)
        assert isinstance(until, datetime)
        if until.tzinfo is None:
            until = until.replace(tzinfo=UTC)
        return Suspend(due_at=until.timestamp())
