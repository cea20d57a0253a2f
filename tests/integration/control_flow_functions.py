"""Functions the control-flow tests call from ``python`` blocks inside bodies (by import path)."""

from __future__ import annotations

import threading
import time
from typing import Any

ACTIVE = {"now": 0, "peak": 0}
_LOCK = threading.Lock()
ATTEMPTS: dict[str, int] = {}


def slow_square(x: int) -> int:
    """Square ``x`` slowly, recording how many calls overlap."""
    with _LOCK:
        ACTIVE["now"] += 1
        ACTIVE["peak"] = max(ACTIVE["peak"], ACTIVE["now"])
    time.sleep(0.15)
    with _LOCK:
        ACTIVE["now"] -= 1
    return x * x


def reset() -> None:
    ACTIVE.update(now=0, peak=0)
    ATTEMPTS.clear()


def fail_on(x: int, bad: int) -> int:
    if x == bad:
        raise ValueError(f"item {x} is bad")
    return x


def flaky(x: int, ctx: Any) -> int:
    """Fails on each item's first attempt."""
    ATTEMPTS[ctx.block_id] = ctx.attempt
    if ctx.attempt == 1:
        raise RuntimeError("first attempt fails")
    return x + 100


def key_of(ctx: Any) -> str:
    return str(ctx.idempotency_key)


BAD: set[int] = set()
CALLS: dict[int, int] = {}


def fail_if_bad(x: int) -> int:
    CALLS[x] = CALLS.get(x, 0) + 1
    if x in BAD:
        raise ValueError(f"item {x} is bad")
    return x
