"""Creating a queued run without running it (``flowforge run --detach``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flowforge.definition.parameters import validate_parameters
from flowforge.definition.workflow import Workflow
from flowforge.embedded import Engine, new_run_id
from flowforge.engine import advance
from flowforge.engine.journal import Slots
from flowforge.engine.records import NewRun


def create_queued_run(engine: Engine, workflow: Workflow, given: dict[str, Any]) -> str:
    """Store the run as ``queued`` with its start task; any worker (or ``resume``) runs it.

    TODO: use ``Engine.start`` (SPEC 5) once the engine has it.
    """
    compiled = workflow.compile()
    parameters = validate_parameters(compiled.spec.parameters, given, from_strings=True)
    version = engine.apply(workflow)
    run = NewRun(new_run_id(), workflow.id, version, parameters, None, datetime.now(UTC))

    def body(txn: Any) -> advance.Advanced:
        step = advance.Step(txn, engine.book, Slots(0), 30.0)
        advance.create_run(step, run, compiled, False)
        return step.finish()

    engine.store.transaction(body)
    return run.run_id
