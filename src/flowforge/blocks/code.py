"""``code``: run a snippet of Python in a separate, restricted process; output ``result``.

The static check (``flowforge.sandbox.static_check``) runs first and refuses the code with
error type ``InsecureCode`` (never retried). The code then runs in a child process
(``flowforge.sandbox``): an empty environment, a scratch directory deleted afterwards, CPU,
memory, process, file and output limits, a wall-time limit, and — where the machine allows —
no network and a private filesystem view. See docs/blocks/code.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, ClassVar

from pydantic import Field

from flowforge.definition.block import Block
from flowforge.errors import BlockError, ConfigurationError, NonRetryableError

NON_RETRYABLE_ERRORS = frozenset(
    {
        "InsecureCode",
        "SyntaxError",
        "ResourceLimit",
        "MissingResult",
        "ResultNotSerializable",
        "ProcessCrashed",
        "InvalidInput",
    }
)
"""Error types that another attempt cannot fix; every other one (the code's own exceptions,
``SandboxError``) follows the block's retry policy."""


class CodeBlock(Block):
    """Run ``code`` (Python) with ``inputs``; output the value of its variable ``result``."""

    type_name: ClassVar[str] = "code"
    raw_fields: ClassVar[frozenset[str]] = frozenset({"code"})

    code: str = Field(min_length=1)
    """Python source, never rendered: it reads its values from ``inputs``."""
    inputs: dict[str, Any] = Field(default_factory=dict)
    """Values for the code (templates), as the mapping ``inputs``; JSON in the child."""

    async def run(self, ctx: Any) -> Any:
        # the sandbox is imported here: validating a definition must not load it
        from flowforge.sandbox import isolation as isolation_module
        from flowforge.sandbox.limits import SandboxLimits
        from flowforge.sandbox.process import run_in_sandbox
        from flowforge.sandbox.static_check import (
            DEFAULT_ALLOWED_MODULES,
            CodeSyntaxError,
            check,
        )

        allowed = DEFAULT_ALLOWED_MODULES | frozenset(ctx.policy.code_extra_modules)
        try:
            violations = check(self.code, allowed)
        except CodeSyntaxError as exc:
            raise NonRetryableError(f"the code does not parse: {exc}", "SyntaxError") from None
        if violations:
            listed = "\n".join(f"  - {v}" for v in violations)
            raise NonRetryableError(
                f"the code was refused by the static check ({len(violations)} problem(s)):\n"
                f"{listed}\nAllowed modules: {', '.join(sorted(allowed))} (an operator can add "
                "more with FLOWFORGE_CODE_ALLOWED_MODULES)",
                "InsecureCode",
            )
        try:
            json.dumps(self.inputs, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise NonRetryableError(
                f"the block's inputs are not JSON: {exc}", "InvalidInput"
            ) from None
        try:
            limits = SandboxLimits.from_env()
            isolation = isolation_module.known()
            if isolation is None:  # the first code block of this process: probe the machine
                isolation = await asyncio.to_thread(isolation_module.detect)
        except ConfigurationError as exc:
            raise BlockError(str(exc), "SandboxError") from None
        level = logging.WARNING if isolation.degraded else logging.INFO
        ctx.logger.log(level, "sandbox: %s; limits: %s", isolation.describe(), limits.describe())
        outcome = await run_in_sandbox(
            self.code,
            self.inputs,
            allowed,
            isolation=isolation,
            limits=limits,
            logger=ctx.logger,
            label=f"flowforge-code:{ctx.run_id}:{ctx.block_id}:{ctx.attempt}",
            cancelled=lambda: bool(ctx.cancelled),
        )
        if outcome.ok:
            return outcome.result
        if outcome.error_type in NON_RETRYABLE_ERRORS:
            raise NonRetryableError(outcome.message, outcome.error_type)
        raise BlockError(outcome.message, outcome.error_type)
