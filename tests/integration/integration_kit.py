"""Helpers of the integration suite: polling with a deadline, event lookups, timing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import flowforge
from flowforge import Event


def wait_until(predicate: Callable[[], object], timeout: float = 5.0, what: str = "") -> None:
    """Poll ``predicate`` until it is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(0.01)


async def async_wait_until(
    predicate: Callable[[], object], timeout: float = 5.0, what: str = ""
) -> None:
    """Like ``wait_until``, yielding to the event loop between polls."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        await asyncio.sleep(0.01)


def types_of(events: list[Event], block_id: str | None = None) -> list[str]:
    """The event types, of one block when ``block_id`` is given."""
    return [e.type for e in events if block_id is None or e.block_id == block_id]


def has_event(
    engine: flowforge.Engine, run_id: str, kind: str, block_id: str | None = None
) -> bool:
    return any(
        e.type == kind and (block_id is None or e.block_id == block_id)
        for e in engine.events(run_id)
    )


@dataclass
class Interval:
    """When a block's function ran, in ``time.monotonic`` seconds."""

    start: float
    end: float

    def overlaps(self, other: Interval) -> bool:
        return self.start < other.end and other.start < self.end
