"""Control-flow blocks, decided by the planner itself: no worker runs them, no slot is held.

``for_each`` and ``loop`` open iterations (frames of instances, see ``engine.frames``),
``switch`` chooses a branch, ``wait_for_signal`` takes a signal (or waits for one), and
``workflow`` starts a child run. Mixed into ``Planner``: the same pure, clock-free decisions.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from flowforge.definition.compiled import CompiledBlock, CompiledWorkflow
from flowforge.definition.control_base import case_key
from flowforge.engine import commands as cmd
from flowforge.engine import outcomes as out
from flowforge.engine.frames import Frame, frame_id, frame_result, locate, open_frame
from flowforge.engine.run_state import BlockState, Progress, RunState, count_dependency
from flowforge.engine.states import BlockStatus, RunStatus
from flowforge.errors import FlowforgeError

if TYPE_CHECKING:
    from flowforge.definition.control_specs import (
        ForEachSpec,
        LoopSpec,
        SwitchSpec,
        WaitForSignalSpec,
        WorkflowCallSpec,
    )


def child_run_id(run_id: str, block_id: str, attempt: int) -> str:
    """The id of the child run a ``workflow`` block starts: the same on every replay."""
    digest = hashlib.sha256(f"{run_id}/{block_id}/{attempt}".encode()).hexdigest()
    return f"run_{digest[:32]}"


class ControlFlow:
    """The control-flow half of the planner (see ``Planner`` for the attributes used)."""

    workflow: CompiledWorkflow
    state: RunState
    now: datetime
    commands: list[cmd.Command]
    _scope: Callable[[Frame | None], Mapping[str, Any]]
    _stopping_as: str | None

    # -- starting -------------------------------------------------------------------------
    def _start_control(self, block_id: str) -> None:
        bs = self.state.blocks[block_id]
        if bs.status != BlockStatus.PENDING:
            return
        block, frame = locate(self.workflow, self.state, block_id)
        bs.attempt += 1
        bs.status, bs.started_at, bs.finished_at = BlockStatus.RUNNING, self.now, None
        kind = block.kind
        try:
            if kind == "switch":
                self._start_switch(block_id, block, bs, frame)
            elif kind == "wait_for_signal":
                spec = cast("WaitForSignalSpec", block.spec)
                self._start_signal_wait(block_id, spec, block, bs)
            elif kind == "for_each":
                self._start_for_each(block_id, block, bs, frame)
            elif kind == "loop":
                self.commands.append(cmd.StartControl(block_id, bs.attempt, {}))
                bs.progress = Progress()
                self._advance(block_id)
            elif kind == "workflow":
                call = cast("WorkflowCallSpec", block.spec)
                self._start_child(block_id, call, block, bs, frame)
        except FlowforgeError as exc:
            self._fail(block_id, block, bs, {"type": "TemplateError", "message": str(exc)})

    def _start_switch(
        self, block_id: str, block: CompiledBlock, bs: BlockState, frame: Frame | None
    ) -> None:
        spec = cast("SwitchSpec", block.spec)
        key = case_key(block.expressions["value"].render(self._scope(frame)))
        chosen = key if key in spec.cases else "default"
        self.commands.append(cmd.StartControl(block_id, bs.attempt, {"value": key}))
        self._complete(block_id, bs, chosen)

    def _chosen(self, block: CompiledBlock, frame: Frame | None, block_id: str) -> bool:
        """Whether every switch listing ``block`` chose a case that names it (else: skipped)."""
        for switch_id, keys in block.guards:
            switch = self.state.blocks[frame.ids[switch_id] if frame else switch_id]
            if switch.status == BlockStatus.COMPLETED and switch.output not in keys:
                self._skip(block_id, f"switch '{switch_id}' chose '{switch.output}'")
                return False
        return True

    def _complete(
        self, block_id: str, bs: BlockState, output: Any, signal: str | None = None
    ) -> None:
        bs.status, bs.output, bs.error, bs.finished_at = (
            BlockStatus.COMPLETED,
            output,
            None,
            self.now,
        )
        self.commands.append(cmd.CompleteBlock(block_id, bs.attempt, output, signal))
        self._final(block_id, bs)

    # -- signals --------------------------------------------------------------------------
    def _start_signal_wait(
        self, block_id: str, spec: WaitForSignalSpec, block: CompiledBlock, bs: BlockState
    ) -> None:
        self.commands.append(cmd.StartControl(block_id, bs.attempt, {"signal": spec.signal}))
        buffered = self.state.signals.get(spec.signal)
        if buffered:
            self._complete(block_id, bs, buffered.popleft(), signal=spec.signal)
            return
        bs.status = BlockStatus.WAITING
        self.commands.append(
            cmd.SuspendBlock(block_id, bs.attempt, block.timeout, None, signal=spec.signal)
        )

    def signal(self, name: str, payload: Any) -> list[cmd.Command]:
        """A signal reached the run: the first block waiting for it takes it, else it is kept
        for the next block that waits for it (oldest first)."""
        waiting = self._waiting_for(name)
        self.commands.append(cmd.ReceiveSignal(name, payload, waiting))
        if waiting is None:
            self.state.signals.setdefault(name, deque()).append(payload)
        else:
            self._complete(waiting, self.state.blocks[waiting], payload)
            self._drain()
            if self.state.status == RunStatus.RUNNING:
                self._settle()
        return self.commands

    def _waiting_for(self, name: str) -> str | None:
        for block_id, bs in self.state.blocks.items():
            if bs.status != BlockStatus.WAITING or not bs.control:
                continue
            spec = locate(self.workflow, self.state, block_id)[0].spec
            if spec.type == "wait_for_signal" and cast("WaitForSignalSpec", spec).signal == name:
                return block_id
        return None

    def _signal_timed_out(self, block_id: str, block: CompiledBlock, bs: BlockState) -> None:
        spec = cast("WaitForSignalSpec", block.spec)
        limit = f"{block.timeout:g}s" if block.timeout else "its timeout"
        error = {"type": "Timeout", "message": f"no signal '{spec.signal}' arrived within {limit}"}
        self._fail(block_id, block, bs, error)

    # -- child runs -----------------------------------------------------------------------
    def _start_child(
        self,
        block_id: str,
        spec: WorkflowCallSpec,
        block: CompiledBlock,
        bs: BlockState,
        frame: Frame | None,
    ) -> None:
        rendered = block.fields.render(self._scope(frame))
        parameters = rendered.get("parameters") or {}
        child = child_run_id(self.state.run_id, block_id, bs.attempt)
        bs.child_run_id = child
        data = {"workflow": spec.workflow, "child_run_id": child}
        self.commands.append(cmd.StartControl(block_id, bs.attempt, data))
        self.commands.append(
            cmd.StartChild(block_id, bs.attempt, spec.workflow, spec.version, dict(parameters))
        )

    def _child_finished(
        self, block: CompiledBlock, bs: BlockState, done: out.ChildFinished
    ) -> None:
        if done.status == RunStatus.COMPLETED:
            self._complete(done.block_id, bs, done.outputs)
            return
        error = {
            "type": "ChildRunFailed",
            "message": f"child run {bs.child_run_id} ended {done.status}: {done.reason}",
        }
        self._fail(done.block_id, block, bs, error)

    def _child_stop_status(self) -> str:
        return self._stopping_as or "cancel"

    # -- iterations -----------------------------------------------------------------------
    def _start_for_each(
        self, block_id: str, block: CompiledBlock, bs: BlockState, frame: Frame | None
    ) -> None:
        items = block.fields.render(self._scope(frame)).get("items")
        if not isinstance(items, list | tuple):
            kind = type(items).__name__ if items is not None else "null"
            error = {"type": "NotIterable", "message": f"'items' must be a list, got {kind}"}
            self.commands.append(cmd.StartControl(block_id, bs.attempt, {}))
            self._fail(block_id, block, bs, error)
            return
        items = list(items)
        self.commands.append(cmd.StartControl(block_id, bs.attempt, {"items": items}))
        bs.progress = Progress(items=items)
        self._advance(block_id)

    def _open(self, container_id: str, progress: Progress) -> None:
        index = progress.started
        frame = open_frame(self.workflow, self.state, container_id, index)
        progress.active += 1
        self.commands.append(cmd.StartIteration(container_id, index))
        for instance in frame.instances:
            self._consider(instance)

    def _advance(self, container_id: str) -> None:
        """Start the iterations a container has room for, or end it when they are over."""
        bs = self.state.blocks[container_id]
        progress = bs.progress
        if progress is None or bs.status != BlockStatus.RUNNING:
            return
        block, _ = locate(self.workflow, self.state, container_id)
        running = self.state.status == RunStatus.RUNNING and not self.state.failing_fast
        if block.kind == "for_each":
            spec = cast("ForEachSpec", block.spec)
            items = progress.items or []
            while (
                running
                and progress.failed is None
                and progress.started < len(items)
                and progress.active < spec.concurrency
            ):
                self._open(container_id, progress)
            if progress.active == 0 and (progress.failed or progress.started >= len(items)):
                self._end_container(container_id, block, bs, progress)
            return
        loop = cast("LoopSpec", block.spec)
        if progress.active:
            return
        if progress.started == 0:
            if running:
                self._open(container_id, progress)
            return
        if progress.failed is not None:
            self._end_container(container_id, block, bs, progress)
            return
        last = self.state.frames[frame_id(container_id, progress.started - 1)]
        _, output, _ = frame_result(self.state, last)
        scope = {**self._scope(last), "output": output}
        try:
            done = bool(block.expressions["until"].render(scope))
        except FlowforgeError as exc:
            self._fail(container_id, block, bs, {"type": "TemplateError", "message": str(exc)})
            return
        if done:
            self._end_container(container_id, block, bs, progress)
        elif progress.started >= loop.max_iterations:
            error = {
                "type": "MaxIterationsReached",
                "message": f"'until' was still false after {loop.max_iterations} iterations",
            }
            self._fail(container_id, block, bs, error)
        elif running:
            self._open(container_id, progress)

    def _end_container(
        self, container_id: str, block: CompiledBlock, bs: BlockState, progress: Progress
    ) -> None:
        if progress.failed is not None:
            self._fail(container_id, block, bs, progress.failed)
            return
        outputs = []
        for index in range(progress.started):
            _, output, _ = frame_result(
                self.state, self.state.frames[frame_id(container_id, index)]
            )
            outputs.append(output)
        self._complete(container_id, bs, outputs)

    def _iteration_ended(self, frame: Frame) -> None:
        bs = self.state.blocks[frame.container]
        progress = bs.progress
        if progress is None or bs.is_final:
            return
        progress.active -= 1
        self._note_failure(frame, progress)
        self._advance(frame.container)

    def _note_failure(self, frame: Frame, progress: Progress) -> None:
        """A finished iteration that failed (and is not tolerated) stops its container."""
        ok, _, error = frame_result(self.state, frame)
        block, _ = locate(self.workflow, self.state, frame.container)
        if ok or block.spec.continue_on_failure or progress.failed is not None:
            return
        error = error or {}
        progress.failed = {
            "type": "IterationFailed",
            "message": f"iteration {frame.index} failed: "
            f"{error.get('type')}: {error.get('message')}",
        }

    def _recount_frames(self) -> None:
        """After a reload: each frame's open instances and dependency counts, each container's
        active iterations and first failure."""
        state = self.state
        for progress_holder in state.blocks.values():
            if progress_holder.progress is not None:
                progress_holder.progress.active = 0
                progress_holder.progress.failed = None
        for frame in state.frames.values():
            frame.open = 0
            for body_id, instance in frame.ids.items():
                bs = state.blocks[instance]
                if not bs.is_final:
                    frame.open += 1
                    continue
                for dependent in frame.body.blocks[body_id].dependents:
                    count_dependency(state.blocks[frame.ids[dependent]], bs)
            container = state.blocks[frame.container]
            progress = container.progress
            if progress is None:
                continue
            if frame.open:
                progress.active += 1
            else:
                self._note_failure(frame, progress)

    # provided by Planner
    def _fail(
        self,
        block_id: str,
        block: CompiledBlock,
        bs: BlockState,
        error: dict[str, Any],
        notes: dict[str, Any] | None = None,
    ) -> None: ...
    def _final(self, block_id: str, bs: BlockState) -> None: ...
    def _skip(self, block_id: str, reason: str) -> None: ...
    def _consider(self, block_id: str) -> None: ...
    def _drain(self) -> None: ...
    def _settle(self) -> None: ...
