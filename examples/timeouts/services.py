"""Functions of the timeouts example, imported by the workflow as "services:NAME".

Simulated services: one answers quickly, one hangs longer than its block's timeout allows, and
a long batch job checks for cancellation as it goes.
"""

from __future__ import annotations

import asyncio
from typing import Any


async def quick_lookup(customer_id: int) -> dict[str, Any]:
    await asyncio.sleep(0.1)
    return {"customer_id": customer_id, "tier": "gold"}


async def slow_pricing(customer_id: int, hang_for: float, ctx: Any) -> dict[str, Any]:
    """A pricing service that hangs for ``hang_for`` seconds, longer than the block's timeout."""
    ctx.logger.info("pricing attempt %d", ctx.attempt)
    await asyncio.sleep(hang_for)
    return {"customer_id": customer_id, "discount": 0.1}


async def batch_export(seconds: float, ctx: Any) -> str:
    """A long job. An async block is canceled at its next ``await`` when the run stops it."""
    for _ in range(int(seconds * 10)):
        await asyncio.sleep(0.1)
    return "exported"


def release_locks(statuses: dict[str, str]) -> dict[str, str]:
    """Cleanup that must run whatever happened (trigger rule all_done)."""
    return {"released": "customer-lock", **statuses}


def page_on_call(error: dict[str, Any] | None) -> str:
    """The failure handler (trigger rule one_failed)."""
    if error is None:
        return "paged: a block failed"
    return f"paged: {error['type']}: {error['message']}"
