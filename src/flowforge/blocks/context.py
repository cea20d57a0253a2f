"""What a block's ``run`` receives: the block context (``ctx``)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flowforge.blocks.policy import BlockPolicy
from flowforge.errors import Cancelled


@dataclass(frozen=True, slots=True)
class Suspend:
    """Returned by a block's ``run`` to wait durably: ``delay`` seconds, or until epoch ``due_at``.

    The block holds no worker slot while it waits; its output is null when the timer fires.
    """

    delay: float | None = None
    due_at: float | None = None


@dataclass
class BlockContext:
    """The context of one block attempt.

    ``idempotency_key`` is the same for every attempt of the block in the run (and for every
    worker that runs it), so side effects can be deduplicated by the systems they touch.
    """

    run_id: str
    workflow_id: str
    block_id: str
    attempt: int
    idempotency_key: str
    params: Mapping[str, Any]
    logger: logging.Logger
    resolve_function: Callable[[str], Callable[..., Any]]
    """Finds a ``python`` block's function: the workflow's own callables, then imports."""
    heartbeat: Callable[[], None] = field(default=lambda: None)
    """Tell the engine this attempt is alive (long blocks call it now and then)."""
    cancel_event: threading.Event | None = None
    """Set when the attempt must stop (canceled, timed out); readable from any thread."""
    policy: BlockPolicy = field(default_factory=BlockPolicy.local)
    """What blocks touching the outside world may do in this process (networks, commands)."""

    annotations: dict[str, Any] = field(default_factory=dict)
    """Facts about the attempt kept with its completion (an ``llm`` block's token usage)."""

    def annotate(self, key: str, value: Any) -> None:
        """Keep ``value`` (JSON) with this attempt: it is recorded in its ``block.completed``
        event under ``annotations`` and shown by ``runs show``."""
        self.annotations[key] = value

    @property
    def cancelled(self) -> bool:
        """True once the run asked this block to stop (cancel, fail_fast, timeout)."""
        return self.cancel_event is not None and self.cancel_event.is_set()

    def raise_if_cancelled(self) -> None:
        """For sync code in a thread: stop here if the block was asked to stop."""
        if self.cancelled:
            raise Cancelled(f"block {self.block_id} of run {self.run_id} was canceled")
