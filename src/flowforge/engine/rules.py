"""Trigger rules: when a block may start, from its dependencies' outcomes (SPEC 2.1).

Counts are kept per block so a decision costs O(1) however many dependencies it has.
"""

from __future__ import annotations

from enum import StrEnum


class Decision(StrEnum):
    RUN = "run"
    SKIP = "skip"
    WAIT = "wait"


HANDLER_RULES = frozenset({"all_done", "one_failed", "all_failed"})
"""Rules a failure can satisfy: these blocks still run when the run fails fast."""


def decide(rule: str, total: int, final: int, success: int, failed: int) -> Decision:
    """Decide a block's fate from its dependency counts.

    ``success`` counts completed dependencies and tolerated failures (``continue_on_failure``);
    ``failed`` counts untolerated failures and cancellations; the rest of ``final`` is skipped.
    Decisions are taken as early as they are certain, as Airflow does.
    """
    if total == 0:
        return Decision.RUN
    done = final == total
    if rule == "all_success":
        if final - success > 0:
            return Decision.SKIP
        return Decision.RUN if done else Decision.WAIT
    if rule == "all_done":
        return Decision.RUN if done else Decision.WAIT
    if rule == "none_failed":
        if failed > 0:
            return Decision.SKIP
        return Decision.RUN if done else Decision.WAIT
    if rule == "one_success":
        if success > 0:
            return Decision.RUN
        return Decision.SKIP if done else Decision.WAIT
    if rule == "one_failed":
        if failed > 0:
            return Decision.RUN
        return Decision.SKIP if done else Decision.WAIT
    if rule == "all_failed":
        if final - failed > 0:
            return Decision.SKIP
        return Decision.RUN if done else Decision.WAIT
    raise ValueError(f"unknown trigger rule {rule!r}")
