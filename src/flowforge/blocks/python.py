"""``python``: call a Python function. Sync functions run in a thread, async ones on the loop."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from flowforge.definition.builtin_specs import PythonSpec

USER_THREADS = ThreadPoolExecutor(max_workers=64, thread_name_prefix="flowforge-block")
"""Where sync block functions run. Not the loop's default executor: ``asyncio.run`` joins that
one on exit, so a timed-out or canceled sync function (which no one can kill) would hold up the
end of ``flowforge.run`` until it returned by itself."""


@functools.lru_cache(maxsize=4096)
def _signature(fn: Callable[..., Any]) -> tuple[bool, bool, bool]:
    """(is async, wants ctx, takes **kwargs) of ``fn``, looked at once."""
    params = inspect.signature(fn).parameters
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    return inspect.iscoroutinefunction(fn), "ctx" in params, var_kw


class PythonBlock(PythonSpec):
    async def run(self, ctx: Any) -> Any:
        fn = ctx.resolve_function(self.function)
        is_async, wants_ctx, _ = _signature(fn)
        kwargs = dict(self.args)
        if wants_ctx:
            kwargs["ctx"] = ctx
        if is_async:
            return await fn(**kwargs)
        # the one place where user code runs in a thread
        call = functools.partial(contextvars.copy_context().run, fn, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(USER_THREADS, call)
