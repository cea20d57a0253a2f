"""Custom block type — a `greet` type declared with @flowforge.block_type, used from a workflow
built in Python next to a python block. Run it: python examples/custom_block/greet.py [NAME]"""

from __future__ import annotations

import os
import sys
import tempfile

import flowforge
from flowforge.definition import Templated

if not (os.environ.get("FLOWFORGE_HOME") or os.environ.get("FLOWFORGE_DATABASE_URL")):
    os.environ["FLOWFORGE_HOME"] = tempfile.mkdtemp(prefix="flowforge-example-")


@flowforge.block_type("greet")
class Greet(flowforge.Block):
    """Greets someone, ``times`` times. Its fields are validated like a built-in type's."""

    name: str  # a string field takes templates as it is
    times: Templated[int] = 1  # a non-string field that may also be a template
    punctuation: str = "!"

    async def run(self, ctx):
        ctx.logger.info("greeting %s (attempt %d)", self.name, ctx.attempt)
        return " ".join([f"Hello, {self.name}{self.punctuation}"] * self.times)


wf = flowforge.Workflow(
    "greetings",
    parameters={"name": str, "times": {"type": "integer", "default": 2}},
    outputs={"greeting": "{{ blocks.hello.output }}", "length": "{{ blocks.measure.output }}"},
)
wf.add({"id": "hello", "type": "greet", "name": "{{ params.name }}", "times": "{{ params.times }}"})


@wf.block()
def measure(hello):  # receives the output of the custom block
    return len(hello)


def main() -> int:
    name = sys.argv[1] if len(sys.argv) > 1 else "Ada"
    result = flowforge.run(wf, params={"name": name})
    print(f"run {result.run_id}: {result.status}")
    print(f"outputs: {result.outputs}")
    print("as YAML:")
    print(wf.to_yaml())
    return 0 if result.status == "completed" else 1


if __name__ == "__main__":
    sys.exit(main())
