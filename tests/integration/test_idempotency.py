"""Starting a run with an idempotency key already used returns the existing run (SPEC 3)."""

from __future__ import annotations

import flowforge


def test_same_idempotency_key_runs_once_and_returns_the_same_run(
    engine: flowforge.Engine,
) -> None:
    wf = flowforge.Workflow("once")
    calls = []

    @wf.block()
    def effect() -> int:
        calls.append(1)
        return len(calls)

    first = engine.run(wf, idempotency_key="k")
    second = engine.run(wf, idempotency_key="k")
    assert first.run_id == second.run_id
    assert (second.status, second.outputs) == ("completed", {"effect": 1})
    assert len(calls) == 1
    other = engine.run(wf, idempotency_key="other")
    assert other.run_id != first.run_id and len(calls) == 2
    assert len(engine.list(workflow_id="once")) == 2


def test_idempotency_key_is_per_workflow(engine: flowforge.Engine) -> None:
    make = lambda wid: flowforge.Workflow.from_dict(  # noqa: E731
        {"id": wid, "blocks": [{"id": "a", "type": "noop"}]}
    )
    one = engine.run(make("one"), idempotency_key="k")
    two = engine.run(make("two"), idempotency_key="k")
    assert one.run_id != two.run_id


def test_idempotency_key_is_honoured_across_engines(store_url: str) -> None:
    wf = flowforge.Workflow.from_dict({"id": "shared", "blocks": [{"id": "a", "type": "noop"}]})
    with flowforge.Engine(store_url) as first_engine:
        first = first_engine.run(wf, idempotency_key="k")
    with flowforge.Engine(store_url) as second_engine:
        assert second_engine.run(wf, idempotency_key="k").run_id == first.run_id


def test_start_queues_a_run_that_resume_runs_to_the_end(store_url: str) -> None:
    wf = flowforge.Workflow("queued", parameters={"n": int})

    @wf.block()
    def double(params):  # type: ignore[no-untyped-def]
        return params["n"] * 2

    with flowforge.Engine(store_url) as engine:
        queued = engine.start(wf, {"n": "21"}, from_strings=True, idempotency_key="once")
        assert queued.status == "queued"
        assert engine.start(wf, {"n": 21}, idempotency_key="once").run_id == queued.run_id
        assert [e.type for e in engine.events(queued.run_id)] == ["run.queued"]
        done = engine.resume(queued.run_id)
    assert done.status == "completed"
    assert done.outputs == {"double": 42}


def test_concurrent_starts_with_one_key_make_one_run(store_url: str) -> None:
    import threading

    wf = flowforge.Workflow("racing")
    wf.add({"id": "only", "type": "noop"})
    with flowforge.Engine(store_url) as setup:
        setup.apply(wf)
    barrier = threading.Barrier(4)
    ids: list[str] = []

    def start() -> None:
        with flowforge.Engine(store_url) as engine:
            barrier.wait()
            ids.append(engine.start(wf, idempotency_key="same").run_id)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(ids) == 4 and len(set(ids)) == 1
    with flowforge.Engine(store_url) as engine:
        assert [run.run_id for run in engine.list()] == ids[:1]
