"""Creating a queued run without running it (``flowforge run --detach``, ``runs start``)."""

from __future__ import annotations

from typing import Any

from flowforge.definition.workflow import Workflow
from flowforge.embedded import Engine
from flowforge.run_result import RunResult


def create_queued_run(engine: Engine, workflow: Workflow, given: dict[str, Any]) -> str:
    """Store the run as ``queued`` with its start task; any worker (or ``resume``) runs it."""
    return engine.start(workflow, given, from_strings=True).run_id


def start_stored_run(
    engine: Engine,
    workflow_id: str,
    version: int | None,
    given: dict[str, Any],
    idempotency_key: str | None = None,
) -> RunResult:
    """Queue a run of a stored workflow, pinned to ``version`` (default: the latest)."""
    return engine.start(
        workflow_id, given, version=version, from_strings=True, idempotency_key=idempotency_key
    )
