"""Python API — the workflow of SPEC 5 built with @wf.block, run with flowforge.run, then
inspected with an Engine. Run it: python examples/python_api/totals.py [N]"""

from __future__ import annotations

import os
import sys
import tempfile

import flowforge

# Runs go to the store under FLOWFORGE_HOME (default ~/.flowforge). Unless you chose a home or a
# database, keep this example's runs in a throwaway directory.
if not (os.environ.get("FLOWFORGE_HOME") or os.environ.get("FLOWFORGE_DATABASE_URL")):
    os.environ["FLOWFORGE_HOME"] = tempfile.mkdtemp(prefix="flowforge-example-")

wf = flowforge.Workflow("totals", parameters={"n": int})


@wf.block(retry=flowforge.Retry(max_attempts=3, initial_interval="100ms"))
def numbers(params, ctx):
    # `params` receives the run's parameters, `ctx` the block context. The first attempt fails
    # on purpose, to show the retry.
    if ctx.attempt == 1:
        raise ConnectionError("the number service is warming up")
    return list(range(params["n"]))


@wf.block()
async def total(numbers):  # a parameter named after a block receives its output
    return sum(numbers)


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 4
    result = flowforge.run(wf, params={"n": n})  # embedded store, blocks until the end
    print(f"run {result.run_id}: {result.status}")
    print(f"outputs: {result.outputs}")
    for block in result.blocks:
        print(f"  {block.block_id}: {block.status} after {block.attempts} attempt(s)")

    # The same run, read back from the store, with its events.
    with flowforge.Engine() as engine:
        stored = engine.get(result.run_id)
        assert stored.outputs == result.outputs
        print("events:", ", ".join(f"{e.seq}:{e.type}" for e in engine.events(result.run_id)))

    print("as YAML:")
    print(wf.to_yaml())
    return 0 if result.status == "completed" else 1


if __name__ == "__main__":
    sys.exit(main())
