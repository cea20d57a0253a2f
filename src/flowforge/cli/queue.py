"""Creating a queued run without running it (``flowforge run --detach``)."""

from __future__ import annotations

from typing import Any

from flowforge.definition.workflow import Workflow
from flowforge.embedded import Engine


def create_queued_run(engine: Engine, workflow: Workflow, given: dict[str, Any]) -> str:
    """Store the run as ``queued`` with its start task; any worker (or ``resume``) runs it."""
    return engine.start(workflow, given, from_strings=True).run_id
