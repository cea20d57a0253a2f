"""Records from SQLAlchemy rows (the administrative read paths)."""

from __future__ import annotations

from typing import Any

from flowforge.engine.records import Event, RunRecord
from flowforge.store.transaction import utc


def run_from_row(row: Any) -> RunRecord:
    return RunRecord(
        run_id=row.id,
        workflow_id=row.workflow_id,
        workflow_version=row.workflow_version,
        status=row.status,
        parameters=row.parameters or {},
        outputs=row.outputs,
        failure_reason=row.failure_reason,
        idempotency_key=row.idempotency_key,
        created_at=utc(row.created_at),  # type: ignore[arg-type]
        started_at=utc(row.started_at),
        finished_at=utc(row.finished_at),
    )


def event_from_row(row: Any) -> Event:
    return Event(
        run_id=row.run_id,
        seq=row.seq,
        type=row.type,
        block_id=row.block_id,
        data=row.data or {},
        created_at=utc(row.created_at),
    )
