"""What a workflow is: the definition model, its validation and its compiled form."""

from __future__ import annotations

from flowforge.definition.block import Block, BlockSpec, Templated
from flowforge.definition.compiled import CompiledBlock, CompiledWorkflow
from flowforge.definition.fields import Duration
from flowforge.definition.models import ParameterSpec, RetryPolicy, Settings, WorkflowSpec
from flowforge.definition.registry import BlockTypeRegistry, block_type, default_registry
from flowforge.definition.validation import validate
from flowforge.definition.workflow import Workflow, load

Retry = RetryPolicy

__all__ = [
    "Block",
    "BlockSpec",
    "BlockTypeRegistry",
    "CompiledBlock",
    "CompiledWorkflow",
    "Duration",
    "ParameterSpec",
    "Retry",
    "RetryPolicy",
    "Settings",
    "Templated",
    "Workflow",
    "WorkflowSpec",
    "block_type",
    "default_registry",
    "load",
    "validate",
]
