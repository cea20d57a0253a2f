"""``fail``: fails with error type ``Failed`` and its rendered ``message``."""

from __future__ import annotations

from typing import Any, NoReturn

from flowforge.definition.builtin_specs import FailSpec
from flowforge.errors import BlockError


class FailBlock(FailSpec):
    async def run(self, ctx: Any) -> NoReturn:
        raise BlockError(self.message, error_type="Failed")
