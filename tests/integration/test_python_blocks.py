"""``python`` blocks: ``ctx`` injection, idempotency keys, threads and the loop (SPEC 2.3, 3)."""

from __future__ import annotations

import threading

import flowforge


def test_ctx_is_injected_with_the_run_block_and_attempt(engine: flowforge.Engine) -> None:
    wf = flowforge.Workflow("with-ctx")

    @wf.block()
    def describe(ctx: flowforge.BlockContext) -> dict[str, object]:
        ctx.logger.info("running")
        ctx.heartbeat()
        return {
            "run": ctx.run_id,
            "block": ctx.block_id,
            "attempt": ctx.attempt,
            "workflow": ctx.workflow_id,
            "cancelled": ctx.cancelled,
        }

    result = engine.run(wf)
    assert result.outputs == {
        "describe": {
            "run": result.run_id,
            "block": "describe",
            "attempt": 1,
            "workflow": "with-ctx",
            "cancelled": False,
        }
    }


def test_idempotency_key_is_stable_across_retries_and_differs_between_blocks(
    engine: flowforge.Engine,
) -> None:
    wf = flowforge.Workflow("keys")
    keys: dict[str, list[str]] = {"first": [], "second": []}

    @wf.block(retry={"max_attempts": 3, "initial_interval": "10ms"})
    def first(ctx: flowforge.BlockContext) -> int:
        keys["first"].append(ctx.idempotency_key)
        if ctx.attempt < 3:
            raise ConnectionError("again")
        return ctx.attempt

    @wf.block()
    def second(ctx: flowforge.BlockContext) -> None:
        keys["second"].append(ctx.idempotency_key)

    result = engine.run(wf)
    assert result.status == "completed"
    assert len(keys["first"]) == 3 and len(set(keys["first"])) == 1
    assert keys["second"][0] != keys["first"][0]
    again = engine.run(wf)
    assert keys["first"][-1] != keys["first"][0], "another run, another key"
    assert again.status == "completed"


def test_sync_functions_run_in_a_thread_and_async_ones_on_the_loop(
    engine: flowforge.Engine,
) -> None:
    wf = flowforge.Workflow("threads")
    main = threading.current_thread()

    @wf.block()
    def sync_block() -> bool:
        return threading.current_thread() is not main

    @wf.block()
    async def async_block() -> bool:
        return threading.current_thread() is main

    assert engine.run(wf).outputs == {"sync_block": True, "async_block": True}


def test_block_parameters_receive_upstream_outputs_and_params(engine: flowforge.Engine) -> None:
    wf = flowforge.Workflow("wiring", parameters={"n": int})

    @wf.block()
    def numbers(params: dict[str, int]) -> list[int]:
        return list(range(params["n"]))

    @wf.block()
    async def total(numbers: list[int]) -> int:
        return sum(numbers)

    @wf.block()
    def both(numbers: list[int], total: int) -> dict[str, object]:
        return {"numbers": numbers, "total": total}

    result = engine.run(wf, {"n": 4})
    assert result.outputs == {"both": {"numbers": [0, 1, 2, 3], "total": 6}}


def test_output_that_is_not_json_fails_without_retry(engine: flowforge.Engine) -> None:
    wf = flowforge.Workflow("bad-output")
    calls = []

    @wf.block(retry={"max_attempts": 3, "initial_interval": "10ms"})
    def opaque() -> object:
        calls.append(1)
        return object()

    result = engine.run(wf)
    assert result.status == "failed"
    assert len(calls) == 1
    assert result.block("opaque").error["type"] == "OutputNotSerializable"  # type: ignore[index]


def test_yaml_shaped_python_block_imports_its_function(engine: flowforge.Engine) -> None:
    wf = flowforge.Workflow.from_dict(
        {
            "id": "imported",
            "blocks": [
                {
                    "id": "dump",
                    "type": "python",
                    "function": "json:dumps",
                    "args": {"obj": [1, "{{ run.workflow_id }}"]},
                },
                {
                    "id": "missing",
                    "type": "python",
                    "function": "no_such_module_ff:fn",
                    "retry": {"max_attempts": 3, "initial_interval": "10ms"},
                },
            ],
        }
    )
    result = engine.run(wf)
    assert result.block("dump").output == '[1, "imported"]'
    missing = result.block("missing")
    assert (missing.status, missing.attempts) == ("failed", 1)
    assert missing.error["type"] == "FunctionNotFound"  # type: ignore[index]
