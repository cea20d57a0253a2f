"""``Engine``: the Python API (SPEC 5) over a store and an in-process worker."""

from __future__ import annotations

import asyncio
import builtins
import os
import socket
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from flowforge.blocks.policy import BlockPolicy
from flowforge.definition.compiled import CompiledWorkflow
from flowforge.definition.parameters import validate_parameters
from flowforge.definition.registry import default_registry, registry_for_stored
from flowforge.definition.workflow import Workflow
from flowforge.engine import advance
from flowforge.engine.journal import Slots
from flowforge.engine.ports import StaleWriteError
from flowforge.engine.records import Event, LogLine, NewRun
from flowforge.engine.replay import replay
from flowforge.errors import NotFoundError, StoreError
from flowforge.run_result import RunResult, build_result, result_from_state
from flowforge.settings import database_url as default_database_url
from flowforge.store import SqlStore, open_store
from flowforge.worker.worker import Worker

Observer = Callable[[Event], Any]
TERMINAL_EVENTS = frozenset(
    {"run.completed", "run.failed", "run.canceled", "run.terminated", "run.timed_out"}
)


def new_run_id() -> str:
    return f"run_{uuid.uuid4().hex}"


class Engine:
    """Runs and manages workflows on one store (default: the embedded SQLite file)."""

    def __init__(
        self,
        database_url: str | None = None,
        *,
        concurrency: int = 1000,
        sqlite_synchronous: str | None = None,
        lease: float = 30.0,
        cancel_grace: float = 10.0,
        policy: BlockPolicy | None = None,
    ) -> None:
        """``lease``: seconds a dead worker's blocks stay claimed before another takes them
        over (its heartbeat renews them every third of it). ``cancel_grace``: seconds a block of
        a canceled run has to end by itself (``ctx.cancelled`` is true) before it is stopped."""
        self.store: SqlStore = open_store(
            default_database_url(database_url), sqlite_synchronous=sqlite_synchronous
        )
        self.concurrency = concurrency
        self.lease = lease
        self.cancel_grace = cancel_grace
        self.policy = policy
        """What blocks may do (networks, commands): default, the user's own machine for
        ``run``/``resume``, a server for ``work`` (``flowforge worker``)."""
        self.book = advance.RunBook(self._load_workflow)
        self._observers: list[Observer] = []
        self._definitions: dict[tuple[str, int], Workflow] = {}
        self.last_worker: Worker | None = None
        self._workers: list[Worker] = []
        """Workers running in this process (``run``, ``resume``), newest last."""
        self._applied: dict[int, tuple[CompiledWorkflow, int]] = {}

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- observers --------------------------------------------------------------------------
    def subscribe(self, callback: Observer) -> Callable[[], None]:
        """Call ``callback`` with every event this process commits; returns an unsubscribe."""
        self._observers.append(callback)
        return lambda: self._observers.remove(callback)

    # -- workflows --------------------------------------------------------------------------
    def apply(self, workflow: Workflow) -> int:
        """Store the workflow's definition; a changed one becomes a new version."""
        compiled = workflow.compile()
        known = self._applied.get(id(compiled))
        if known is not None and known[0] is compiled:
            return known[1]
        version, _ = self.store.save_workflow(
            workflow.id, workflow.spec.title, workflow.to_dict(), workflow.digest
        )
        self._definitions[(workflow.id, version)] = workflow
        self.book.add_workflow(workflow.id, version, compiled)
        self._applied[id(compiled)] = (compiled, version)
        return version

    def _load_workflow(self, workflow_id: str, version: int) -> CompiledWorkflow:
        known = self._definitions.get((workflow_id, version))
        if known is not None:
            return known.compile()
        found = self.store.get_workflow_version(workflow_id, version)
        if found is None:
            raise NotFoundError(f"workflow {workflow_id} version {version} does not exist")
        definition = found[1]
        registry = registry_for_stored(_block_types(definition.get("blocks", [])))
        workflow = Workflow.from_dict(definition, registry=registry)
        self._definitions[(workflow_id, version)] = workflow
        return workflow.compile(registry if registry is not default_registry() else None)

    # -- runs -------------------------------------------------------------------------------
    def run(
        self,
        workflow: Workflow,
        params: Mapping[str, Any] | None = None,
        *,
        from_strings: bool = False,
        idempotency_key: str | None = None,
    ) -> RunResult:
        """Validate, run to the end in this process, and return the run record."""
        return asyncio.run(
            self.run_async(
                workflow, params, from_strings=from_strings, idempotency_key=idempotency_key
            )
        )

    async def run_async(
        self,
        workflow: Workflow,
        params: Mapping[str, Any] | None = None,
        *,
        from_strings: bool = False,
        idempotency_key: str | None = None,
        on_created: Callable[[str], Any] | None = None,
    ) -> RunResult:
        compiled, prepared = self._prepare(workflow, params, from_strings, idempotency_key)
        if isinstance(prepared, RunResult):
            return prepared
        run = prepared
        async with self._worker() as worker:
            done = self._watch(run.run_id, worker)
            try:
                await worker.transact(lambda step: advance.create_run(step, run, compiled, True))
            except StoreError as error:
                return self._existing_after_race(workflow.id, idempotency_key, error)
            if on_created is not None:
                on_created(run.run_id)
            await done
        state = self.book.cached(run.run_id)
        if state is None:
            return self.get(run.run_id)
        return result_from_state(state, compiled)

    def start(
        self,
        workflow: Workflow | str,
        params: Mapping[str, Any] | None = None,
        *,
        version: int | None = None,
        from_strings: bool = False,
        idempotency_key: str | None = None,
    ) -> RunResult:
        """Queue a run and return at once (status ``queued``): a worker, or ``resume`` in any
        process, runs it. The same key twice returns the existing run.

        ``workflow`` is a ``Workflow`` (stored first: a changed one becomes a new version) or
        the id of a stored workflow, run as stored at ``version`` (default: the latest)."""
        if isinstance(workflow, str):
            compiled, prepared = self._prepare_stored(
                workflow, version, params, from_strings, idempotency_key
            )
            workflow_id = workflow
        else:
            compiled, prepared = self._prepare(workflow, params, from_strings, idempotency_key)
            workflow_id = workflow.id
        if isinstance(prepared, RunResult):
            return prepared
        run = prepared

        def body(txn: Any) -> advance.Advanced:
            step = advance.Step(txn, self.book, Slots(0), self.lease)
            advance.create_run(step, run, compiled, False)
            return step.finish()

        try:
            self._publish(self.store.transaction(body).events)
        except StoreError as error:
            return self._existing_after_race(workflow_id, idempotency_key, error)
        return self.get(run.run_id)

    def _prepare(
        self,
        workflow: Workflow,
        params: Mapping[str, Any] | None,
        from_strings: bool,
        idempotency_key: str | None,
    ) -> tuple[CompiledWorkflow, NewRun | RunResult]:
        """Validate the parameters and store the definition: the run to create, or the run
        that already has this idempotency key."""
        compiled = workflow.compile()
        parameters = validate_parameters(
            compiled.spec.parameters, params or {}, from_strings=from_strings
        )
        version = self.apply(workflow)
        if idempotency_key is not None:
            existing = self.store.find_run_by_idempotency_key(workflow.id, idempotency_key)
            if existing is not None:
                return compiled, self.get(existing.run_id)
        run = NewRun(
            new_run_id(), workflow.id, version, parameters, idempotency_key, datetime.now(UTC)
        )
        return compiled, run

    def _prepare_stored(
        self,
        workflow_id: str,
        version: int | None,
        params: Mapping[str, Any] | None,
        from_strings: bool,
        idempotency_key: str | None,
    ) -> tuple[CompiledWorkflow, NewRun | RunResult]:
        """Like ``_prepare`` for a stored definition, pinned to its version: nothing is applied,
        so no version is created."""
        found = self.store.get_workflow_version(workflow_id, version)
        if found is None:
            if version is not None and self.store.get_workflow_version(workflow_id) is not None:
                raise NotFoundError(f"workflow {workflow_id} has no version {version}")
            raise NotFoundError(f"workflow {workflow_id} does not exist")
        number = found[0]
        compiled = self.book.workflow(workflow_id, number)
        parameters = validate_parameters(
            compiled.spec.parameters, params or {}, from_strings=from_strings
        )
        if idempotency_key is not None:
            existing = self.store.find_run_by_idempotency_key(workflow_id, idempotency_key)
            if existing is not None:
                return compiled, self.get(existing.run_id)
        run = NewRun(
            new_run_id(), workflow_id, number, parameters, idempotency_key, datetime.now(UTC)
        )
        return compiled, run

    def _existing_after_race(
        self, workflow_id: str, idempotency_key: str | None, error: StoreError
    ) -> RunResult:
        """Creating the run failed: if another process just created one with the same
        idempotency key (the unique constraint refused ours), that run is the answer."""
        existing = None
        if idempotency_key is not None:
            existing = self.store.find_run_by_idempotency_key(workflow_id, idempotency_key)
        if existing is None:
            raise error
        return self.get(existing.run_id)

    def resume(self, run_id: str) -> RunResult:
        """Continue a run in this process, to the end: a run whose process died, a queued run
        (``start``), a paused one (unpaused first), a retried one. An ended run is returned
        as it is."""
        return asyncio.run(self.resume_async(run_id))

    async def resume_async(self, run_id: str) -> RunResult:
        record = self.store.get_run(run_id)
        if record is None:
            raise NotFoundError(f"run {run_id} does not exist")
        if record.status in ("completed", "failed", "canceled", "terminated", "timed_out"):
            return self.get(run_id)
        if record.status == "paused":
            self.unpause(run_id)  # resuming a paused run means: let it go on (here)
        self.book.workflow(record.workflow_id, record.workflow_version)  # see _known_run
        self.store.release_dead_workers_tasks(run_id, socket.gethostname(), _pid_alive)
        async with self._worker() as worker:
            done = self._watch(run_id, worker)
            await worker.transact(lambda step: _touch(step, run_id))
            worker.wake()
            await done
        return self.get(run_id)

    async def work(self, stop: asyncio.Event, *, drain_timeout: float = 30.0) -> None:
        """Run blocks of any run in the store until ``stop`` is set (``flowforge worker``);
        then finish what runs for up to ``drain_timeout`` seconds and hand back the rest."""
        worker = self._new_worker(listen=True)
        self._workers.append(worker)
        await worker.start()
        try:
            await stop.wait()
        finally:
            await worker.drain(drain_timeout)
            self._workers.remove(worker)

    def get(self, run_id: str) -> RunResult:
        """The run record, blocks included."""
        record = self.store.get_run(run_id)
        if record is None:
            raise NotFoundError(f"run {run_id} does not exist")
        workflow = self._load_workflow(record.workflow_id, record.workflow_version)
        state = replay(workflow, record, self.store.run_events(run_id), [])
        return build_result(record, workflow, state, self.store.run_attempts(run_id))

    def list(
        self, workflow_id: str | None = None, status: str | None = None, limit: int = 50
    ) -> builtins.list[RunResult]:
        return [self.get(r.run_id) for r in self.store.list_runs(workflow_id, status, limit)]

    def events(self, run_id: str, after_seq: int = 0) -> builtins.list[Event]:
        if self.store.get_run(run_id) is None:
            raise NotFoundError(f"run {run_id} does not exist")
        return self.store.run_events(run_id, after_seq)

    def logs(self, run_id: str, block_id: str | None = None) -> builtins.list[LogLine]:
        """What the run's block attempts logged, in order (``ctx.logger``, and the output of
        ``code`` and ``command`` blocks), secrets redacted; of one block when given."""
        if self.store.get_run(run_id) is None:
            raise NotFoundError(f"run {run_id} does not exist")
        return self.store.run_logs(run_id, block_id)

    def cancel(self, run_id: str, reason: str | None = None) -> RunResult:
        return self._control(run_id, "cancel", reason)

    def terminate(self, run_id: str, reason: str | None = None) -> RunResult:
        return self._control(run_id, "terminate", reason)

    def pause(self, run_id: str) -> RunResult:
        return self._control(run_id, "pause")

    def unpause(self, run_id: str) -> RunResult:
        return self._control(run_id, "resume")

    def retry(self, run_id: str) -> RunResult:
        """Continue a failed, canceled or timed-out run; completed blocks keep their outputs."""
        return self._control(run_id, "retry")

    def signal(self, run_id: str, name: str, payload: Any = None) -> RunResult:
        """Send signal ``name`` with ``payload`` to a run: the ``wait_for_signal`` block waiting
        for it takes it; one that waits later finds it kept. ``InvalidInputError`` when no
        block waits for ``name`` or the payload fits no block's ``schema``."""
        return self._change(run_id, lambda step: advance.signal(step, run_id, name, payload))

    def _control(self, run_id: str, action: str, reason: str | None = None) -> RunResult:
        return self._change(run_id, lambda step: advance.control(step, run_id, action, reason))

    def _change(self, run_id: str, change: Callable[[advance.Step], Any]) -> RunResult:
        self._known_run(run_id)
        if self._workers:
            # a worker of this engine may be running the run: it must act on the change at
            # once (stop canceled blocks, start resumed ones, end the caller's wait)
            self._workers[-1].transact_blocking(change)
            return self.get(run_id)

        def body(txn: Any) -> advance.Advanced:
            step = advance.Step(txn, advance.RunBook(self._load_workflow), Slots(0), 30.0)
            change(step)
            return step.finish()

        while True:
            try:
                result = self.store.transaction(body)
                break
            except StaleWriteError:
                continue  # a worker wrote the run meanwhile: do it again on what it wrote
        self.book.forget([run_id])  # its cached state, if any, is behind the store now
        self._publish(result.events)
        return self.get(run_id)

    def _publish(self, events: Sequence[Event]) -> None:
        for event in events:
            for observer in self._observers:
                observer(event)

    # -- helpers ----------------------------------------------------------------------------
    def _known_run(self, run_id: str) -> None:
        """Load the run's workflow now, before a transaction needs it: a store read inside an
        open transaction of the same thread is a nested transaction (SQLite refuses it)."""
        record = self.store.get_run(run_id)
        if record is None:
            raise NotFoundError(f"run {run_id} does not exist")
        self.book.workflow(record.workflow_id, record.workflow_version)

    def _new_worker(self, listen: bool = False) -> Worker:
        worker = Worker(
            self.store,
            self.book,
            concurrency=self.concurrency,
            lease=self.lease,
            heartbeat=self.lease / 3,
            cancel_grace=self.cancel_grace,
            policy=self.policy,
            listen=listen,
        )
        worker.observers.extend(self._observers)
        self.last_worker = worker
        return worker

    def _worker(self) -> _WorkerScope:
        return _WorkerScope(self._new_worker(), self._workers)

    def _watch(self, run_id: str, worker: Worker) -> asyncio.Future[None]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def observe(event: Event) -> None:
            if event.run_id == run_id and event.type in TERMINAL_EVENTS and not done.done():
                done.set_result(None)
                worker.followed.discard(run_id)

        worker.observers.append(observe)
        worker.followed.add(run_id)  # another process may end it (a signal, a cancel)
        return done


class _WorkerScope:
    """A started worker, listed in ``active`` (the engine's running workers) while it runs."""

    def __init__(self, worker: Worker, active: list[Worker]) -> None:
        self.worker = worker
        self.active = active

    async def __aenter__(self) -> Worker:
        await self.worker.start()
        self.active.append(self.worker)
        return self.worker

    async def __aexit__(self, *exc: object) -> None:
        self.active.remove(self.worker)
        await self.worker.stop()


def _touch(step: advance.Step, run_id: str) -> None:
    """Load the run (re-planning it if needed) and claim its due tasks."""
    step.fresh(run_id)
    advance.claim(step, max(step.slots.free, 0), run_id)


def _block_types(blocks: Any) -> list[str]:
    """The type names a stored definition uses, bodies of ``for_each``/``loop`` included."""
    found: list[str] = []
    for block in blocks if isinstance(blocks, list) else [blocks]:
        if isinstance(block, dict):
            found.append(str(block.get("type", "")))
            if "do" in block:
                found.extend(_block_types(block["do"]))
    return found


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run(
    workflow: Workflow, params: Mapping[str, Any] | None = None, *, database_url: str | None = None
) -> RunResult:
    """Run ``workflow`` to the end on the embedded store (or ``database_url``)."""
    with Engine(database_url) as engine:
        return engine.run(workflow, params)
