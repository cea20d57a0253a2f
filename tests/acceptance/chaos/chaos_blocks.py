"""The functions of the chaos workflow (chaos.yaml): deterministic outputs, a little sleep so
that a worker killed at a random instant is often in the middle of one."""

from __future__ import annotations

import random
import time
from typing import Any


def _pause() -> None:
    time.sleep(random.uniform(0.05, 0.3))


def inc(x: int) -> int:
    _pause()
    return x + 1


def double(x: int) -> int:
    _pause()
    return 2 * x


def add(x: int, k: int) -> int:
    _pause()
    return x + k


def scale(x: int, k: int) -> int:
    _pause()
    return x * k


def flaky(ctx: Any, x: int) -> int:
    """Fails attempts 1 and 2 (its retry policy allows 3); a lost attempt also counts here."""
    _pause()
    if ctx.attempt <= 2:
        raise ConnectionError(f"simulated failure of attempt {ctx.attempt}")
    return x + 1000


def join(fan: list[int], k: int) -> dict[str, Any]:
    _pause()
    return {"fan": fan, "k": k}


def final(n: int, chain: list[int], joined: dict[str, Any]) -> dict[str, Any]:
    _pause()
    return {"n": n, "chain": chain, "total": sum(joined["fan"]) + joined["k"], "k": joined["k"]}
