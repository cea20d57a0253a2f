"""Iterations of ``for_each`` and ``loop``: frames of instances inside one run.

Iteration ``i`` of container ``C`` is the frame ``C[i]``. Its blocks are instances of the
body's blocks, with ids ``C[i]`` (a one-block body) or ``C[i].B`` (block ``B`` of a sub-graph
body). Instances are blocks of the run like any other: they have states, attempts, events and
leases; a crash in iteration 300 of 1,000 resumes at 300. A frame also carries the names its
templates see (``item``, ``index``, ``iteration``) and maps the body's block ids to instance
ids, so that ``blocks.B`` inside the body means block ``B`` of the same iteration.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flowforge.definition.compiled import CompiledBlock, CompiledBody, CompiledWorkflow
from flowforge.engine.run_state import BlockState, RunState


@dataclass(slots=True, eq=False)
class Frame:
    """One iteration of a container."""

    id: str
    container: str
    index: int
    body: CompiledBody
    ids: dict[str, str]
    """Body block id -> instance id in this iteration."""
    variables: dict[str, Any]
    """``item``/``index`` (``for_each``) or ``iteration`` (``loop``), and the enclosing ones."""
    parent: Frame | None = None
    open: int = 0
    """Instances that are not final yet: 0 means the iteration is over."""
    instances: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Node:
    """Where an instance comes from: the body block it runs and its frame."""

    block: CompiledBlock
    frame: Frame


def locate(
    workflow: CompiledWorkflow, state: RunState, block_id: str
) -> tuple[CompiledBlock, Frame | None]:
    """The compiled block behind ``block_id`` (a workflow block or an instance) and its frame."""
    node = state.nodes.get(block_id)
    if node is not None:
        return node.block, node.frame
    return workflow.blocks[block_id], None


def frame_id(container_id: str, index: int) -> str:
    return f"{container_id}[{index}]"


def open_frame(workflow: CompiledWorkflow, state: RunState, container_id: str, index: int) -> Frame:
    """Create iteration ``index`` of ``container_id``: its instances, all pending."""
    container, parent = locate(workflow, state, container_id)
    body = container.body
    assert body is not None, f"block {container_id} has no body"
    fid = frame_id(container_id, index)
    spec = container.spec
    variables = dict(parent.variables) if parent is not None else {}
    if spec.type == "for_each":
        from flowforge.definition.control_specs import ForEachSpec

        assert isinstance(spec, ForEachSpec)
        progress = state.blocks[container_id].progress
        items = progress.items if progress is not None and progress.items is not None else []
        variables[spec.loop_variable] = items[index] if index < len(items) else None
        variables["index"] = index
    else:
        variables["iteration"] = index
    if body.single:
        ids = {block_id: fid for block_id in body.blocks}
    else:
        ids = {block_id: f"{fid}.{block_id}" for block_id in body.blocks}
    frame = Frame(fid, container_id, index, body, ids, variables, parent)
    for block_id, block in body.blocks.items():
        instance = ids[block_id]
        state.blocks[instance] = BlockState(control=block.control)
        state.nodes[instance] = Node(block, frame)
        frame.instances.append(instance)
    frame.open = len(frame.instances)
    state.frames[fid] = frame
    progress = state.blocks[container_id].progress
    if progress is not None:
        progress.started = max(progress.started, index + 1)
    return frame


def frame_result(state: RunState, frame: Frame) -> tuple[bool, Any, dict[str, Any] | None]:
    """(succeeded, output, error) of a finished iteration."""
    error: dict[str, Any] | None = None
    for instance in frame.instances:
        bs = state.blocks[instance]
        if bs.status == "canceled" or (bs.status == "failed" and not bs.tolerated):
            error = bs.error or {"type": "Canceled", "message": f"block {instance} was canceled"}
            break
    if frame.body.single:
        output = state.blocks[frame.instances[0]].output
    else:
        output = {block_id: state.blocks[iid].output for block_id, iid in frame.ids.items()}
    return error is None, (output if error is None else None), error
