"""The store's contract, on SQLite and PostgreSQL: fencing, leases, claims, schema."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from flowforge.engine.ports import StaleWriteError
from flowforge.engine.records import ClaimedTask, Event, NewRun, NewTask, TaskKind
from flowforge.store import SqlStore, open_store
from flowforge.store.revision import SCHEMA_REVISION


@pytest.fixture
def store(store_url: str) -> SqlStore:
    opened = open_store(store_url)
    yield opened
    opened.close()


def _run(store: SqlStore, run_id: str = "run_1") -> None:
    new = NewRun(run_id, "wf", 1, {"n": 1}, None, datetime.now(UTC))
    store.transaction(lambda txn: txn.insert_run(new))


def _task(
    store: SqlStore, worker: str, task_id: str = "run_1:a", delay: float = 0.0, claim: bool = True
) -> list[ClaimedTask]:
    task = NewTask(task_id, "run_1", TaskKind.BLOCK, "a", 1, delay=delay, claim=claim)
    return store.transaction(lambda txn: txn.insert_tasks([task], 30.0), worker)


def test_schema_revision_matches_the_migrations_head(store: SqlStore) -> None:
    from flowforge.store.migrate import head_revision

    assert store.schema_revision() == SCHEMA_REVISION == head_revision(store.engine)


def test_a_task_is_finished_once_by_its_holder(store: SqlStore) -> None:
    _run(store)
    [held] = _task(store, "w1")
    assert store.transaction(lambda txn: txn.finish_tasks([held]), "w1") == [True]
    assert store.transaction(lambda txn: txn.finish_tasks([held]), "w1") == [False]


def test_a_stale_token_cannot_finish_a_reclaimed_task(store: SqlStore) -> None:
    _run(store)
    [first] = _task(store, "w1")
    # the lease expires: another worker claims the task and gets a new token
    store.transaction(lambda txn: txn.delete_run_tasks("run_1"))
    _task(store, "w1", claim=False)
    [second] = store.transaction(lambda txn: txn.claim_tasks(10, 30.0), "w2")
    assert second.token != first.token or second.task_id == first.task_id
    stale = ClaimedTask(
        second.task_id,
        second.run_id,
        second.kind,
        second.block_id,
        second.attempt,
        second.token - 1,
    )
    assert store.transaction(lambda txn: txn.finish_tasks([stale]), "w1") == [False]
    assert store.transaction(lambda txn: txn.finish_tasks([second]), "w2") == [True]


def test_a_stale_task_in_a_batch_reruns_the_transaction_checked(store: SqlStore) -> None:
    _run(store)
    [held] = _task(store, "w1", "run_1:a")
    stale = ClaimedTask("run_1:gone", "run_1", TaskKind.BLOCK, "b", 1, 1)
    calls = []

    def body(txn):  # type: ignore[no-untyped-def]
        calls.append(txn)
        return txn.finish_tasks([held, stale])

    assert store.transaction(body, "w1") == [True, False]


def test_claims_skip_tasks_that_are_not_due_or_are_leased(store: SqlStore) -> None:
    _run(store)
    _task(store, "w1", "run_1:held")
    _task(store, "w1", "run_1:later", delay=60, claim=False)
    _task(store, "w1", "run_1:due", claim=False)
    claimed = store.transaction(lambda txn: txn.claim_tasks(10, 30.0), "w2")
    assert [task.task_id for task in claimed] == ["run_1:due"]
    assert store.transaction(lambda txn: txn.claim_tasks(10, 30.0), "w3") == []


def test_an_expired_lease_can_be_claimed_by_another_worker(store: SqlStore) -> None:
    _run(store)
    task = NewTask("run_1:a", "run_1", TaskKind.BLOCK, "a", 1, claim=True)
    store.transaction(lambda txn: txn.insert_tasks([task], 0.05), "w1")
    time.sleep(0.3)
    [taken] = store.transaction(lambda txn: txn.claim_tasks(10, 30.0), "w2")
    assert taken.token == 2


def test_two_writers_of_one_run_cannot_both_append_the_same_sequence(store: SqlStore) -> None:
    _run(store)
    event = Event("run_1", 1, "run.queued", None, {}, datetime.now(UTC))
    store.transaction(lambda txn: txn.append_events([event]))
    with pytest.raises(StaleWriteError):
        store.transaction(lambda txn: txn.append_events([event]))
    assert [e.seq for e in store.run_events("run_1")] == [1]


def test_workflow_versions_grow_only_when_the_definition_changes(store: SqlStore) -> None:
    assert store.save_workflow("wf", None, {"id": "wf", "v": 1}, "d1") == (1, True)
    assert store.save_workflow("wf", None, {"id": "wf", "v": 1}, "d1") == (1, False)
    assert store.save_workflow("wf", None, {"id": "wf", "v": 2}, "d2") == (2, True)
    assert store.get_workflow_version("wf") == (2, {"id": "wf", "v": 2})
    assert store.get_workflow_version("wf", 1) == (1, {"id": "wf", "v": 1})
    assert store.delete_workflow("wf")
    assert store.get_workflow_version("wf") is None
    assert store.save_workflow("wf", None, {"id": "wf", "v": 3}, "d3") == (3, True)


def test_migrations_from_empty_match_the_declared_schema(store_url: str) -> None:
    import sqlalchemy as sa

    from flowforge.store.migrate import upgrade
    from flowforge.store.schema import metadata

    store = SqlStore(store_url)
    engine = store.engine
    with engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {table.name}"))
        conn.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))
    upgrade(engine)
    tables = set(sa.inspect(engine).get_table_names())
    assert {table.name for table in metadata.sorted_tables} <= tables
    for table in metadata.sorted_tables:
        columns = {c["name"] for c in sa.inspect(engine).get_columns(table.name)}
        assert columns == {c.name for c in table.columns}, table.name
    store.close()


def test_the_plain_sql_schema_files_match_the_declared_schema() -> None:
    from flowforge.store import ddl

    for dialect in ("sqlite", "postgresql"):
        assert (ddl.HERE / f"{dialect}.sql").read_text() == ddl.generate(dialect), (
            f"regenerate with: python -m flowforge.store.ddl ({dialect})"
        )


def test_a_new_database_gets_the_same_tables_as_the_migrations(store_url: str) -> None:
    import sqlalchemy as sa

    from flowforge.store.schema import metadata

    store = open_store(store_url)  # a new database: its tables come from the plain SQL files
    inspector = sa.inspect(store.engine)
    for table in metadata.sorted_tables:
        columns = {c["name"] for c in inspector.get_columns(table.name)}
        assert columns == {c.name for c in table.columns}, table.name
        # PostgreSQL also reports the index behind a unique constraint
        indexes = {i["name"] for i in inspector.get_indexes(table.name)} - {
            u["name"] for u in inspector.get_unique_constraints(table.name)
        }
        assert indexes == {i.name for i in table.indexes}, table.name
    assert store.schema_revision() == SCHEMA_REVISION
    store.close()


def test_a_run_lease_is_taken_renewed_and_claimed_only_by_others_once_expired(
    store: SqlStore,
) -> None:
    _run(store)
    lease = NewTask("run_1:lease:w1", "run_1", TaskKind.LEASE, claim=True)
    store.transaction(lambda txn: txn.take_leases([lease], 0.2), "w1")
    assert store.renew_leases("w1", 0.2) == 1
    time.sleep(0.4)
    # its holder's heartbeat was late: the holder does not claim it, another worker does
    assert store.transaction(lambda txn: txn.claim_tasks(10, 30.0), "w1") == []
    [taken] = store.transaction(lambda txn: txn.claim_tasks(10, 30.0), "w2")
    assert (taken.task_id, taken.kind, taken.token) == ("run_1:lease:w1", TaskKind.LEASE, 2)
    # the first holder takes it back (a later dispatch): the row is its own again, token up
    store.transaction(lambda txn: txn.take_leases([lease], 30.0), "w1")
    assert store.transaction(lambda txn: txn.finish_tasks([taken]), "w2") == [False]
