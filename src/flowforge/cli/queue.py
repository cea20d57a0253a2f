"""Creating a queued run without running it (``flowforge run --detach``, ``runs start``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flowforge.definition.parameters import validate_parameters
from flowforge.definition.workflow import Workflow
from flowforge.embedded import Engine, new_run_id
from flowforge.engine import advance
from flowforge.engine.journal import Slots
from flowforge.engine.records import NewRun
from flowforge.errors import NotFoundError, StoreError
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
    """Queue a run of a stored workflow, pinned to ``version`` (default: the latest) as it is
    stored: unlike ``Engine.start``, nothing is applied, so no version is ever created.

    TODO: ``Engine.start(workflow_id, …, version=N)`` (SPEC 5) once the engine has it."""
    found = engine.store.get_workflow_version(workflow_id, version)
    if found is None:
        if version is not None and engine.store.get_workflow_version(workflow_id) is not None:
            raise NotFoundError(f"workflow {workflow_id} has no version {version}")
        raise NotFoundError(f"workflow {workflow_id} does not exist")
    number = found[0]
    # the engine's loader: the stored definition, lenient about block types this process lacks
    compiled = engine.book.workflow(workflow_id, number)
    parameters = validate_parameters(compiled.spec.parameters, given, from_strings=True)
    if idempotency_key is not None:
        existing = engine.store.find_run_by_idempotency_key(workflow_id, idempotency_key)
        if existing is not None:
            return engine.get(existing.run_id)
    run = NewRun(new_run_id(), workflow_id, number, parameters, idempotency_key, datetime.now(UTC))

    def body(txn: Any) -> advance.Advanced:
        step = advance.Step(txn, engine.book, Slots(0), engine.lease)
        advance.create_run(step, run, compiled, False)
        return step.finish()

    try:
        engine.store.transaction(body)
    except StoreError:
        # another process may just have created the run with this key (the unique
        # constraint refused ours): that run is the answer
        if idempotency_key is None:
            raise
        existing = engine.store.find_run_by_idempotency_key(workflow_id, idempotency_key)
        if existing is None:
            raise
        return engine.get(existing.run_id)
    return engine.get(run.run_id)
