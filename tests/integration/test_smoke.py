from __future__ import annotations

import flowforge


def test_python_api_runs_a_two_block_workflow(store_url: str) -> None:
    wf = flowforge.Workflow("totals", parameters={"n": int})

    @wf.block(retry=flowforge.Retry(max_attempts=3))
    def numbers(params):  # type: ignore[no-untyped-def]
        return list(range(params["n"]))

    @wf.block()
    async def total(numbers):  # type: ignore[no-untyped-def]
        return sum(numbers)

    result = flowforge.run(wf, params={"n": 4}, database_url=store_url)
    assert result.status == "completed"
    assert result.outputs == {"total": 6}
