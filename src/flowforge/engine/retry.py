"""Retry decisions: pure functions of the policy, the attempt and the error."""

from __future__ import annotations

import random
from dataclasses import dataclass

from flowforge.definition.models import RetryPolicy

JITTER = 0.2
"""With ``jitter``, a delay grows by a random fraction of itself up to this."""


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """Retry after ``delay`` seconds."""

    delay: float


def backoff_delay(policy: RetryPolicy, failures: int, rng: random.Random | None = None) -> float:
    """Delay before the attempt that follows the ``failures``-th failed attempt.

    ``initial_interval * backoff_coefficient ** (failures - 1)``, capped at ``max_interval``;
    with jitter, up to ``JITTER`` more (never above the cap). Jitter only adds: a user who sets
    ``initial_interval: 10s`` because the other side needs 10 seconds never gets 5.
    """
    base = policy.initial_interval * policy.backoff_coefficient ** max(failures - 1, 0)
    delay = min(base, policy.max_interval)
    if policy.jitter and delay > 0:
        spread = (rng or random).uniform(delay, delay * (1 + JITTER))
        delay = min(spread, policy.max_interval)
    return delay


def decide_retry(
    policy: RetryPolicy,
    failures: int,
    error_type: str,
    *,
    retryable: bool = True,
    requested_delay: float | None = None,
) -> RetryDecision | None:
    """Whether a failed attempt gets another one, and after how long.

    ``failures`` counts the attempts that ended in an error, this one included.
    ``max_attempts`` is the total number of tries, so ``max_attempts=3`` retries twice.
    """
    if not retryable or error_type in policy.non_retryable_errors:
        return None
    if failures >= policy.max_attempts:
        return None
    if requested_delay is not None:
        return RetryDecision(delay=max(requested_delay, 0.0))
    return RetryDecision(delay=backoff_delay(policy, failures))
