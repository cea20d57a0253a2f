"""The three bench-peers workload shapes, built with flowforge's Python API.

W1 chain     100 sequential ``python`` blocks: s0 returns 1, s<i> returns its input + 1 -> 100
W2 fan-out   start (1) -> 500 parallel blocks p<i> = base + i -> join summing them -> 125250
W3 40 tasks  40 sequential blocks, each adds naive fibo(10) to its input -> 2200

Every step is a ``python`` block, as in the peers. ``mode="async"`` uses ``async def`` functions
(they run on the worker's event loop); ``mode="sync"`` uses plain functions (each attempt runs in
a thread via ``asyncio.to_thread``). Blocks are added with ``wf.add`` (``@wf.block`` takes the block
id from the function's name and its inputs from its parameter names, so it cannot declare 100
blocks sharing one function); their ``function`` is ``"module:qualname"``, which the worker
resolves from ``sys.modules`` (this module is already imported).

The run's result is the workflow output ``result``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported in build(): bench/run.py reads this module without flowforge
    from flowforge import Workflow

EXPECTED = {"W1": 100, "W2": 125250, "W3": 2200}
CHAIN, FANOUT, FIB_STEPS = 100, 500, 40


def fibo(n: int) -> int:
    return n if n <= 1 else fibo(n - 1) + fibo(n - 2)


# -- async step functions (run on the event loop) --------------------------------------------
async def first() -> int:
    return 1


async def inc(x: int) -> int:
    return x + 1


async def part(base: int, i: int) -> int:
    return base + i


async def join(**parts: int) -> int:
    return sum(parts.values())


async def fib_step(x: int) -> int:
    return x + fibo(10)


# -- sync step functions (one thread per attempt) --------------------------------------------
def first_sync() -> int:
    return 1


def inc_sync(x: int) -> int:
    return x + 1


def part_sync(base: int, i: int) -> int:
    return base + i


def join_sync(**parts: int) -> int:
    return sum(parts.values())


def fib_step_sync(x: int) -> int:
    return x + fibo(10)


FUNCTIONS: dict[str, dict[str, Callable[..., Any]]] = {
    "async": {"first": first, "inc": inc, "part": part, "join": join, "fib": fib_step},
    "sync": {
        "first": first_sync,
        "inc": inc_sync,
        "part": part_sync,
        "join": join_sync,
        "fib": fib_step_sync,
    },
}


def ref(fn: Callable[..., Any]) -> str:
    return f"{fn.__module__}:{fn.__qualname__}"


def out(block_id: str) -> str:
    return f"{{{{ blocks.{block_id}.output }}}}"


def _python(block_id: str, fn: Callable[..., Any], **args: Any) -> dict[str, Any]:
    return {"id": block_id, "type": "python", "function": ref(fn), "args": args}


def w1(mode: str = "async") -> Workflow:
    from flowforge import Workflow

    f = FUNCTIONS[mode]
    wf = Workflow(f"bench-w1-{mode}", outputs={"result": out(f"s{CHAIN - 1}")})
    wf.add(_python("s0", f["first"]))
    for i in range(1, CHAIN):
        wf.add(_python(f"s{i}", f["inc"], x=out(f"s{i - 1}")))
    return wf


def w2(mode: str = "async") -> Workflow:
    from flowforge import Workflow

    f = FUNCTIONS[mode]
    wf = Workflow(f"bench-w2-{mode}", outputs={"result": out("join")})
    wf.add(_python("start", f["first"]))
    for i in range(FANOUT):
        wf.add(_python(f"p{i}", f["part"], base=out("start"), i=i))
    # the join receives the 500 outputs as keyword arguments p0..p499
    wf.add(_python("join", f["join"], **{f"p{i}": out(f"p{i}") for i in range(FANOUT)}))
    return wf


def w3(mode: str = "async") -> Workflow:
    from flowforge import Workflow

    f = FUNCTIONS[mode]
    wf = Workflow(f"bench-w3-{mode}", outputs={"result": out(f"f{FIB_STEPS - 1}")})
    wf.add(_python("f0", f["fib"], x=0))
    for i in range(1, FIB_STEPS):
        wf.add(_python(f"f{i}", f["fib"], x=out(f"f{i - 1}")))
    return wf


BUILDERS = {"W1": w1, "W2": w2, "W3": w3}
BLOCKS = {"W1": CHAIN, "W2": FANOUT + 2, "W3": FIB_STEPS}


def build(workload: str, mode: str = "async") -> Workflow:
    return BUILDERS[workload](mode)


def w3_yaml(module: str = "fibo_steps") -> str:
    """W3 as a definition file: 40 python blocks calling ``<module>:step`` (sync, like a user
    script would write it), the module placed next to the file."""
    lines = ["id: bench-w3-cli", "outputs:", f'  result: "{out(f"f{FIB_STEPS - 1}")}"', "blocks:"]
    for i in range(FIB_STEPS):
        x = "0" if i == 0 else f'"{out(f"f{i - 1}")}"'
        lines += [
            f"  - id: f{i}",
            "    type: python",
            f"    function: {module}:step",
            f"    args: {{x: {x}}}",
        ]
    return "\n".join(lines) + "\n"


FIBO_MODULE = '''"""W3 step for the flowforge CLI bench: add naive fibo(10) to the input."""


def fibo(n):
    return n if n <= 1 else fibo(n - 1) + fibo(n - 2)


def step(x):
    return x + fibo(10)
'''
