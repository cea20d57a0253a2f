"""flowforge: a durable workflow engine for Python.

The public names are imported on first use (PEP 562), so ``import flowforge`` stays cheap and
a command such as ``flowforge run`` pays only for what it touches.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "Block": "flowforge.definition.block",
    "BlockContext": "flowforge.blocks.context",
    "BlockPolicy": "flowforge.blocks.policy",
    "BlockError": "flowforge.errors",
    "BlockResult": "flowforge.run_result",
    "DefinitionError": "flowforge.errors",
    "Engine": "flowforge.embedded",
    "Event": "flowforge.engine.records",
    "FlowforgeError": "flowforge.errors",
    "InvalidInputError": "flowforge.errors",
    "InvalidStateError": "flowforge.errors",
    "NonRetryableError": "flowforge.errors",
    "NotFoundError": "flowforge.errors",
    "ParameterError": "flowforge.errors",
    "ParameterSpec": "flowforge.definition.models",
    "Retry": "flowforge.definition.models",
    "RetryLater": "flowforge.errors",
    "RetryPolicy": "flowforge.definition.models",
    "RunResult": "flowforge.run_result",
    "Settings": "flowforge.definition.models",
    "Suspend": "flowforge.blocks.context",
    "Workflow": "flowforge.definition.workflow",
    "block_type": "flowforge.definition.registry",
    "load": "flowforge.definition.workflow",
    "run": "flowforge.embedded",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from flowforge.blocks.context import BlockContext, Suspend
    from flowforge.blocks.policy import BlockPolicy
    from flowforge.definition.block import Block
    from flowforge.definition.models import ParameterSpec, RetryPolicy, Settings
    from flowforge.definition.models import RetryPolicy as Retry
    from flowforge.definition.registry import block_type
    from flowforge.definition.workflow import Workflow, load
    from flowforge.embedded import Engine, run
    from flowforge.engine.records import Event
    from flowforge.errors import (
        BlockError,
        DefinitionError,
        FlowforgeError,
        InvalidInputError,
        InvalidStateError,
        NonRetryableError,
        NotFoundError,
        ParameterError,
        RetryLater,
    )
    from flowforge.run_result import BlockResult, RunResult


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'flowforge' has no attribute {name!r}")
    attr = "RetryPolicy" if name == "Retry" else name
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
