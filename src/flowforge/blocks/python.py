"""``python``: call a Python function. Sync functions run in a thread, async ones on the loop."""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable
from typing import Any

from flowforge.definition.builtin_specs import PythonSpec


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
        return await asyncio.to_thread(fn, **kwargs)
