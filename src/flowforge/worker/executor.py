"""Run one block attempt and turn whatever happens into an outcome. Never raises."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from flowforge.blocks.context import BlockContext, Suspend
from flowforge.blocks.policy import BlockPolicy
from flowforge.definition.compiled import CompiledBlock
from flowforge.engine import outcomes as out
from flowforge.engine.frames import Frame
from flowforge.engine.run_state import RunState
from flowforge.engine.scope import build_scope
from flowforge.engine.values import escape_nul, has_nul
from flowforge.errors import BlockError, FlowforgeError
from flowforge.worker.attempt_log import attempt_logger
from flowforge.worker.secrets import SecretsView, redact


async def execute(
    block: CompiledBlock,
    state: RunState,
    attempt: int,
    resolve_function: Callable[[str], Callable[..., Any]],
    stop: threading.Event | None = None,
    instance_id: str | None = None,
    frame: Frame | None = None,
    policy: BlockPolicy | None = None,
) -> out.AttemptOutcome:
    """Render the block's fields, run it (with its timeout) and report the outcome.

    ``stop`` is set when the run asks the block to stop (``ctx.cancelled``), and when the
    attempt is over, so code still running in a thread can notice."""
    secrets = SecretsView(
        {name: state.parameters[name] for name in state.secret_names if name in state.parameters}
    )
    stop = stop or threading.Event()
    block_id = instance_id or block.id
    log, kept = attempt_logger(block_id, attempt)
    notes: dict[str, Any] = {}
    outcome = await _run(
        block, state, attempt, resolve_function, stop, block_id, frame, policy, log, secrets, notes
    )
    used = list(secrets.used.values())
    if notes and isinstance(outcome, out.Succeeded | out.Errored):
        # what the attempt noted (an llm block's token usage) is kept whether it succeeded or not
        kept_notes = redact(notes, used) if used else notes
        outcome = dataclasses.replace(outcome, annotations=dict(kept_notes))
    lines = kept.lines(used)
    if not lines:
        return outcome
    return dataclasses.replace(outcome, logs=lines)


async def _run(
    block: CompiledBlock,
    state: RunState,
    attempt: int,
    resolve_function: Callable[[str], Callable[..., Any]],
    stop: threading.Event,
    block_id: str,
    frame: Frame | None,
    policy: BlockPolicy | None,
    log: logging.Logger,
    secrets: SecretsView,
    notes: dict[str, Any],
) -> out.AttemptOutcome:
    try:
        instance = _instantiate(block, state, secrets, frame)
        ctx = BlockContext(
            run_id=state.run_id,
            workflow_id=state.workflow_id,
            block_id=block_id,
            attempt=attempt,
            idempotency_key=f"{state.run_id}:{block_id}",
            params=state.params_view,
            logger=log,
            resolve_function=resolve_function,
            cancel_event=stop,
            policy=policy or BlockPolicy.local(),
            annotations=notes,
        )
        if block.timeout is None:
            result = await instance.run(ctx)
        else:
            async with asyncio.timeout(block.timeout):
                result = await instance.run(ctx)
    except TimeoutError:
        return out.Errored(
            block_id, attempt, "Timeout", f"the attempt exceeded its timeout of {block.timeout:g}s"
        )
    except BlockError as exc:
        return out.Errored(
            block_id,
            attempt,
            exc.error_type,
            _clean(exc.message, secrets),
            retryable=exc.retryable,
            retry_delay=getattr(exc, "delay", None),
        )
    except FlowforgeError as exc:
        return out.Errored(
            block_id, attempt, type(exc).__name__, _clean(str(exc), secrets), retryable=False
        )
    except Exception as exc:
        return out.Errored(block_id, attempt, type(exc).__name__, _clean(str(exc), secrets))
    finally:
        # the attempt is over for the engine (done, timed out or canceled): code still running
        # in a thread sees ctx.cancelled and can stop
        stop.set()
    if isinstance(result, Suspend):
        return out.Suspended(block_id, attempt, result.delay, result.due_at)
    return _succeeded(block_id, attempt, result, secrets)


def _instantiate(
    block: CompiledBlock, state: RunState, secrets: SecretsView, frame: Frame | None
) -> Any:
    if block.fields.is_static:
        return block.spec
    scope = build_scope(state, state.params_view, secrets, frame)
    return block.spec.with_fields(block.fields.render(scope))


def _succeeded(
    block_id: str, attempt: int, result: Any, secrets: SecretsView
) -> out.AttemptOutcome:
    if secrets.used:
        result = redact(result, list(secrets.used.values()))
    try:
        text = json.dumps(result)
    except (TypeError, ValueError) as exc:
        return out.Errored(
            block_id,
            attempt,
            "OutputNotSerializable",
            f"the block's output is not JSON-serialisable: {exc}",
            retryable=False,
        )
    # JSON text shows a NUL as \u0000: only then is the output walked to tell it from a
    # literal backslash sequence
    if "\\u0000" in text and has_nul(result):
        return out.Errored(
            block_id,
            attempt,
            "OutputNotSerializable",
            "the block's output holds a NUL character (\\x00), which the store cannot keep: "
            "remove it, or encode binary data (base64)",
            retryable=False,
        )
    return out.Succeeded(block_id, attempt, result)


def _clean(message: str, secrets: SecretsView) -> str:
    message = escape_nul(message)
    if secrets.used:
        return str(redact(message, list(secrets.used.values())))
    return message
