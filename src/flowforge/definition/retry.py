"""The retry policy of a block (or the default of a workflow)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from flowforge.definition.fields import Duration


class RetryPolicy(BaseModel):
    """How often and how fast a failed block is tried again.

    ``max_attempts`` counts every try (1 = no retry). The n-th retry waits
    ``min(initial_interval * backoff_coefficient ** (n - 1), max_interval)`` seconds, randomised
    when ``jitter`` is set. Errors whose type name is in ``non_retryable_errors`` are never retried.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    max_attempts: int = Field(1, ge=1)
    initial_interval: Duration = 1.0
    backoff_coefficient: float = Field(2.0, ge=1)
    max_interval: Duration = 60.0
    jitter: bool = True
    non_retryable_errors: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _intervals_in_order(self) -> RetryPolicy:
        if self.max_interval < self.initial_interval:
            raise ValueError("max_interval must not be shorter than initial_interval")
        return self
