"""The worker: claims tasks, runs block attempts, reports outcomes, keeps its leases alive.

One worker per process. ``flowforge run`` runs one in process on the embedded store;
``flowforge worker`` is the same worker on a shared store. Blocks made ready by an outcome are
claimed in the transaction that records it and start at once, without polling; the database is
polled only as a safety net and for timers.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from flowforge.blocks.policy import BlockPolicy
from flowforge.engine import advance
from flowforge.engine import outcomes as out
from flowforge.engine.frames import locate
from flowforge.engine.journal import Slots
from flowforge.engine.ports import StaleWriteError
from flowforge.engine.records import ClaimedTask, Event, TaskKind
from flowforge.engine.run_state import RunState
from flowforge.engine.states import BlockStatus
from flowforge.engine.values import escape_nul
from flowforge.errors import StoreError
from flowforge.store.sql_store import SqlStore
from flowforge.store.transaction import SqlTransaction
from flowforge.worker.executor import execute
from flowforge.worker.functions import FunctionResolver

T = TypeVar("T")
_RUN_ENDS = frozenset(
    {"run.completed", "run.failed", "run.canceled", "run.terminated", "run.timed_out"}
)
log = logging.getLogger("flowforge.worker")
Observer = Callable[[Event], Any]


class Worker:
    """Runs blocks of any run in the store, up to ``concurrency`` at once."""

    def __init__(
        self,
        store: SqlStore,
        book: advance.RunBook,
        *,
        concurrency: int = 100,
        lease: float = 30.0,
        heartbeat: float = 10.0,
        poll_interval: float | None = None,
        cancel_grace: float = 10.0,
        watch_interval: float = 0.5,
        listen: bool = False,
        policy: BlockPolicy | None = None,
    ) -> None:
        self.store = store
        self.book = book
        self.concurrency = concurrency
        self.lease = lease
        self.heartbeat = heartbeat
        self.poll_interval = poll_interval or (
            10.0 if listen and store.dialect != "sqlite" else 1.0
        )
        """The safety net: with NOTIFY (PostgreSQL) and known due times, polls are rare."""
        self.worker_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.observers: list[Observer] = []
        self.transactions = 0
        self._running: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._outcomes: list[tuple[ClaimedTask, out.Outcome]] = []
        self._wake = asyncio.Event()
        self._claim_hint = 0.0
        """Wall time at which unclaimed work may be due (0: now)."""
        self._control_claim_at = 0.0
        """When a worker with no free slot next claims leases, timers and deadlines."""
        self._timers: list[float] = []
        """Due times (a heap) of the retries, waits and deadlines this worker scheduled."""
        self._stopping = False
        self._draining = False
        self._event_loop: asyncio.AbstractEventLoop | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._beat_task: asyncio.Task[None] | None = None
        self._watch_task: asyncio.Task[None] | None = None
        self._resolvers: dict[tuple[str, int, str | None], FunctionResolver] = {}
        self._db_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="flowforge-db")
        self._inline_db = store.dialect == "sqlite"
        self._db_calls_in_thread = 0
        self._stops: dict[tuple[str, str], threading.Event] = {}
        self._attempt_numbers: dict[tuple[str, str], int] = {}
        self._graceful: dict[asyncio.Task[None], float] = {}
        """Attempts of canceled runs in their grace period, with its end (loop time)."""
        self.cancel_grace = cancel_grace
        self.watch_interval = watch_interval
        self.policy = policy or (BlockPolicy.for_server() if listen else BlockPolicy.local())
        """What blocks may do here: a shared worker (``listen``) is a server by default."""
        self.listen = listen
        """Listen for NOTIFY (PostgreSQL): for long-lived workers that wait for others' work."""
        self.followed: set[str] = set()
        """Runs someone in this process waits for (``Engine.run``): watched for changes made
        by other processes even while none of their blocks runs here (a signal, a cancel)."""
        self._leases: set[str] = set()
        """Runs this worker holds a lease on (it runs their blocks without a task row each)."""
        self._leases_valid_until = 0.0

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        self._event_loop = asyncio.get_running_loop()
        await self.db(
            lambda: self.store.register_worker(self.worker_id, socket.gethostname(), os.getpid())
        )
        self._loop_task = asyncio.create_task(self._loop(), name="flowforge-worker")
        self._beat_task = asyncio.create_task(self._heartbeats(), name="flowforge-heartbeat")
        self._watch_task = asyncio.create_task(self._watch_runs(), name="flowforge-watch")
        if self.listen:
            # woken when another process leaves work (NOTIFY on PostgreSQL; on SQLite, a commit
            # by another connection): idle, a worker sends nothing
            threading.Thread(
                target=self.store.listen,
                args=(lambda: self._stopping, self._wake_from_thread),
                name="flowforge-listen",
                daemon=True,
            ).start()

    async def drain(self, timeout: float) -> None:
        """Graceful shutdown: claim nothing more (blocks made ready are left to other workers),
        let running blocks finish for up to ``timeout`` seconds, then stop (what still runs is
        handed back)."""
        self._draining = True
        deadline = time.monotonic() + timeout
        while (self._running or self._outcomes) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await self.stop()

    async def stop(self) -> None:
        """Stop claiming, cancel what runs (its tasks come back when the leases expire).

        Attempts of canceled runs still in their grace period get the rest of it to end."""
        self._stopping = True
        self._wake.set()
        await self._end_grace_periods()
        for task in list(self._running.values()):
            task.cancel()
        for own in (self._loop_task, self._beat_task, self._watch_task):
            if own is not None:
                own.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await own
        await asyncio.gather(*self._running.values(), return_exceptions=True)
        with contextlib.suppress(Exception):
            await self.db(lambda: self.store.release_worker_tasks(self.worker_id))
            await self.db(lambda: self.store.deregister_worker(self.worker_id))
        self._db_thread.shutdown(wait=True)

    async def db(self, fn: Callable[[], T]) -> T:
        """Run a store call. SQLite commits take microseconds and run inline. A PostgreSQL
        round trip runs in the worker's one database thread while blocks are running, so they
        keep running meanwhile; with none running there is nothing to keep going, and the
        thread hop would only add latency (a chain of blocks pays it once per block)."""
        if self._runs_inline():
            return fn()
        self._db_calls_in_thread += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._db_thread, fn)
        finally:
            self._db_calls_in_thread -= 1

    def _runs_inline(self) -> bool:
        # never inline while a call is still in the database thread: the run states in memory
        # must be changed by one transaction at a time
        return self._inline_db or (not self._running and not self._db_calls_in_thread)

    async def transact(self, fn: Callable[[advance.Step], Any]) -> advance.Advanced:
        """One engine step in one store transaction; retried after a concurrent writer."""
        result = await self.db(lambda: self._commit(fn))
        self._dispatch(result)
        return result

    def _commit(self, fn: Callable[[advance.Step], Any]) -> advance.Advanced:
        """Commit the step ``fn``, again after a concurrent writer moved a run on (the next
        call of the body reloads what the failed one touched). Runs where store calls run."""
        touched: set[str] = set()
        body = self._body(fn, touched)
        while True:
            try:
                result = self.store.transaction(body, self.worker_id)
            except StaleWriteError:
                continue
            except BaseException:
                self.book.forget(touched)
                raise
            self.transactions += 1
            return result

    def transact_blocking(self, fn: Callable[[advance.Step], Any]) -> advance.Advanced:
        """``transact`` for a synchronous caller (``Engine.cancel`` and the other controls).

        From another thread, the step is handed to the worker's loop. On the loop's own thread
        (a coroutine calling a sync control) the loop cannot be waited for: the step runs at
        once where the worker's steps run (inline, or its one database thread), so it never
        races them over the cached run states."""
        loop = self._event_loop
        assert loop is not None, "the worker is not started"
        if _running_loop() is not loop:
            return asyncio.run_coroutine_threadsafe(self.transact(fn), loop).result()
        result = self._db_blocking(lambda: self._commit(fn))
        self._dispatch(result)
        return result

    def _db_blocking(self, fn: Callable[[], T]) -> T:
        if self._runs_inline():
            return fn()
        return self._db_thread.submit(fn).result()

    def _body(
        self, fn: Callable[[advance.Step], Any], touched: set[str]
    ) -> Callable[[SqlTransaction], advance.Advanced]:
        def body(txn: SqlTransaction) -> advance.Advanced:
            # Called again when an attempt of this transaction failed, before or at its commit
            # (a conflict, a stale fencing token, a dropped connection): the run states the
            # failed attempt changed in memory are not what the store has, so they are
            # reloaded, never reused.
            self.book.forget(touched)
            step = advance.Step(txn, self.book, self._slots(), self.lease)
            try:
                fn(step)
                return step.finish()
            finally:
                touched.update(step.result.run_ids | step.touched)

        return body

    def _slots(self) -> Slots:
        # leases this worker may have lost (its heartbeat lapsed: another worker may have
        # taken them over) are taken again before blocks are dispatched under them
        if time.time() > self._leases_valid_until:
            self._leases.clear()
        free = 0 if self._draining else self.concurrency - len(self._running)
        return Slots(free, set(self._leases))

    # -- the loop ---------------------------------------------------------------------------
    async def _loop(self) -> None:
        while not self._stopping:
            timeout = self._next_wake_in()
            if not self._outcomes:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await self._wake.wait()
            self._wake.clear()
            if self._stopping:
                return
            try:
                await self._step()
            except Exception:
                log.exception("worker step failed; retrying")
                await asyncio.sleep(0.5)

    def _next_wake_in(self) -> float:
        wake_at = min(self._next_claim(), time.time() + self.poll_interval)
        if len(self._running) >= self.concurrency:
            wake_at = min(wake_at, self._control_claim_at)
        return max(0.0, wake_at - time.time())

    def _next_claim(self) -> float:
        """When to look for due work: the poll, or the earliest timer this worker knows of."""
        return min(self._claim_hint, self._timers[0]) if self._timers else self._claim_hint

    async def _step(self) -> None:
        items, self._outcomes = self._outcomes, []
        free = self.concurrency - len(self._running)
        now = time.time()
        claim_now = free > 0 and now >= self._next_claim() and not self._draining
        # a worker with every slot taken still takes over dead workers' leases and fires
        # timers (they run no block), every lease / 4
        claim_control = free <= 0 and not self._draining and now >= self._control_claim_at
        if not items and not claim_now and not claim_control:
            return

        def step(s: advance.Step) -> None:
            # queued work first (oldest first: a dead worker's blocks, runs queued long ago),
            # then the blocks these outcomes make ready take the slots that remain: a busy
            # worker does not starve the queue by always running its own runs' next blocks
            if claim_now:
                advance.claim(s, max(s.slots.free, 0))
            elif claim_control:
                advance.claim(s, 0)
            if items:
                advance.apply_outcomes(s, items)

        if claim_now or claim_control:
            self._control_claim_at = now + self.lease / 4
        if claim_now:
            # polled: nothing more is known to be due until the next poll, unless this very
            # step schedules something sooner (``_dispatch`` lowers the hint then)
            self._claim_hint = now + self.poll_interval
            while self._timers and self._timers[0] <= now:
                heapq.heappop(self._timers)  # due now: this step claims them
        try:
            result = await self.transact(step)
        except StoreError as exc:
            if not items:
                raise
            # the store refused this step: keep the outcomes for the next one, each attempt
            # recorded as failed without what it produced (a value the store cannot keep, say);
            # if the store is down, the next step fails too and they wait for it
            self._outcomes.extend((task, _refused(outcome, exc)) for task, outcome in items)
            raise
        if claim_now and len(result.claimed) >= free:
            self._claim_hint = 0.0  # there may be more than there was room for
        elif claim_now:
            # nothing more to claim now: sleep until the next task becomes claimable (a retry
            # or timer of another worker, a dead worker's lease), not a fixed poll
            upcoming = await self.db(lambda: self.store.next_claimable_in(self.worker_id))
            if upcoming is not None:
                self._claim_hint = min(self._claim_hint, time.time() + max(upcoming, 0.01))

    def _dispatch(self, result: advance.Advanced) -> None:
        if result.leases != self._leases:
            if result.leases - self._leases:
                self._leases_valid_until = time.time() + self.lease * 0.8
            self._leases = result.leases
        for run_id, block_id, graceful in result.canceled:
            self._stop_attempt((run_id, block_id), graceful)
        for task in result.claimed:
            self._launch(task)
        for event in result.events:
            due = event.data.get("due_at")
            if due is not None:
                heapq.heappush(self._timers, float(due))
        self._forget_ended(result.events)
        for event in result.events:
            for observer in self.observers:
                try:
                    observer(event)
                except Exception:
                    log.exception("observer failed on %s", event.type)

    def _forget_ended(self, events: list[Event]) -> None:
        """A long-lived worker keeps no ended run in memory (a retry reloads it), except one
        that someone in this process waits for: it reads the result from memory."""
        for event in events:
            if event.type not in _RUN_ENDS or event.run_id in self.followed:
                continue
            if not any(run_id == event.run_id for run_id, _ in self._running):
                self.book.forget([event.run_id])

    async def _end_grace_periods(self) -> None:
        pending = {task: end for task, end in self._graceful.items() if not task.done()}
        if pending:
            remaining = max(pending.values()) - asyncio.get_running_loop().time()
            await asyncio.wait(list(pending), timeout=max(remaining, 0.0))
        self._graceful.clear()

    def _stop_attempt(self, key: tuple[str, str], graceful: bool) -> None:
        """Cancel: ``ctx.cancelled`` turns true at once and the attempt is stopped after the
        grace period unless it ends first. Terminate, timeout, fail_fast: stopped at once."""
        running = self._running.get(key)
        if running is None:
            return
        stop = self._stops.get(key)
        if graceful and stop is not None and self.cancel_grace > 0:
            stop.set()
            loop = asyncio.get_running_loop()
            loop.call_later(self.cancel_grace, running.cancel)
            self._graceful[running] = loop.time() + self.cancel_grace
        else:
            running.cancel()

    def _launch(self, task: ClaimedTask) -> None:
        state = self.book.cached(task.run_id)
        if state is None or task.kind != TaskKind.BLOCK or task.block_id is None:
            return
        block = state.blocks.get(task.block_id)
        if block is None or block.status != BlockStatus.RUNNING or block.attempt != task.attempt:
            return  # canceled (or moved on) between its claim and now: nothing to run
        key = (task.run_id, task.block_id)
        self._attempt_numbers[key] = task.attempt
        self._running[key] = asyncio.create_task(self._attempt(task, state), name=str(key))

    async def _attempt(self, task: ClaimedTask, state: RunState) -> None:
        block_id = task.block_id or ""
        workflow = self.book.workflow(state.workflow_id, state.workflow_version)
        key = (task.run_id, block_id)
        stop = self._stops[key] = threading.Event()
        block, frame = locate(workflow, state, block_id)
        try:
            outcome = await execute(
                block,
                state,
                task.attempt,
                self._resolver(state).for_block(block.id),
                stop,
                block_id,
                frame,
                self.policy,
            )
        except asyncio.CancelledError:
            return  # canceled by the run (its task is gone) or by shutdown (the lease expires)
        finally:
            self._running.pop(key, None)
            self._stops.pop(key, None)
            self._attempt_numbers.pop(key, None)
        self._outcomes.append((task, outcome))
        self._wake.set()

    def _resolver(self, state: RunState) -> FunctionResolver:
        key = (state.workflow_id, state.workflow_version, state.source_dir)
        resolver = self._resolvers.get(key)
        if resolver is None:
            workflow = self.book.workflow(state.workflow_id, state.workflow_version)
            source_dir = Path(state.source_dir) if state.source_dir else workflow.source_dir
            resolver = FunctionResolver(workflow.callables, source_dir)
            self._resolvers[key] = resolver
        return resolver

    async def _heartbeats(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.heartbeat)
            if not self._running and not self._leases:
                continue
            issued = time.time()
            try:
                await self.db(lambda: self.store.renew_leases(self.worker_id, self.lease))
            except Exception:
                log.exception("lease renewal failed")
                continue
            # rows that expired before this renewal were not renewed (another worker may hold
            # them now): then the leases stay lapsed and are taken again before use
            if issued <= self._leases_valid_until:
                self._leases_valid_until = issued + self.lease * 0.8

    async def _watch_runs(self) -> None:
        """Notice what other processes do to the runs this worker runs blocks of (a cancel,
        a terminate, a retry): their event logs move past what this worker knows."""
        while not self._stopping:
            await asyncio.sleep(self.watch_interval)
            watched = {run_id for run_id, _ in self._running} | self.followed
            if not watched:
                continue
            try:
                await self._catch_up(watched)
            except Exception:
                log.exception("watching runs failed")

    async def _catch_up(self, run_ids: set[str]) -> None:
        ids = sorted(run_ids)
        seqs = await self.db(lambda: self.store.last_seqs(ids))
        moved = [
            run_id
            for run_id in ids
            # only a log that is *ahead* of this worker's view was moved by someone else (this
            # worker's own step in flight puts its view ahead of the log until it commits)
            if ((state := self.book.cached(run_id)) is None and run_id in self.followed)
            or (state is not None and seqs.get(run_id, 0) > state.seq)
        ]
        if not moved:
            return
        await self.transact(lambda step: advance.refresh(step, moved))
        for key in [key for key in self._running if key[0] in moved]:
            state = self.book.cached(key[0])
            block = state.blocks.get(key[1]) if state is not None else None
            current = (
                block is not None
                and block.status == BlockStatus.RUNNING
                and block.attempt == self._attempt_numbers.get(key)
            )
            if not current:
                self._stop_attempt(key, graceful=state is not None and state.status == "canceled")

    def _wake_from_thread(self) -> None:
        loop = self._event_loop
        if self._running and self.store.dialect == "sqlite":
            return  # busy: its own commits wake this watcher too; the poll finds the rest
        if loop is not None and not self._stopping:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self.wake)

    def wake(self, claim: bool = True) -> None:
        """Look for work now (a run was queued or resumed in this process)."""
        if claim:
            self._claim_hint = 0.0
        self._wake.set()


def _refused(outcome: out.Outcome, exc: StoreError) -> out.Outcome:
    """The outcome to record when the store refused to record ``outcome``."""
    if isinstance(outcome, out.Succeeded | out.Errored | out.Suspended):
        if isinstance(outcome, out.Errored) and outcome.error_type == "StoreRefused":
            return outcome
        message = f"the store refused what the attempt produced: {escape_nul(str(exc))}"
        return out.Errored(
            outcome.block_id, outcome.attempt, "StoreRefused", message[:2000], retryable=False
        )
    return outcome


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
