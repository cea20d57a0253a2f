"""flowforge: a durable workflow engine for Python."""

from __future__ import annotations

from flowforge.blocks.context import BlockContext, Suspend
from flowforge.definition import (
    Block,
    ParameterSpec,
    Retry,
    RetryPolicy,
    Settings,
    Workflow,
    block_type,
    load,
)
from flowforge.embedded import Engine, run
from flowforge.engine.records import Event
from flowforge.errors import (
    BlockError,
    DefinitionError,
    FlowforgeError,
    NonRetryableError,
    NotFoundError,
    ParameterError,
    RetryLater,
)
from flowforge.run_result import BlockResult, RunResult

__version__ = "0.1.0"

__all__ = [
    "Block",
    "BlockContext",
    "BlockError",
    "BlockResult",
    "DefinitionError",
    "Engine",
    "Event",
    "FlowforgeError",
    "NonRetryableError",
    "NotFoundError",
    "ParameterError",
    "Retry",
    "RetryLater",
    "RetryPolicy",
    "RunResult",
    "Settings",
    "Suspend",
    "Workflow",
    "block_type",
    "load",
    "run",
]
