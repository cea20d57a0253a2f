"""The one error tree of flowforge.

::

    FlowforgeError                      every error flowforge raises on purpose
    ├── DefinitionError                 a workflow definition is invalid (.problems: all of them)
    ├── ParameterError                  run parameters are invalid (.problems)
    ├── TemplateError                   a template or expression failed to render
    ├── NotFoundError                   a workflow, version or run does not exist
    ├── InvalidStateError               the operation does not fit the run's status
    ├── ConfigurationError              a setting or environment value is unusable
    ├── StoreError                      the store failed after its own retries
    └── BlockError                      a block attempt failed (.error_type, .retryable)
        ├── NonRetryableError           raised by user code: never retried
        └── RetryLater                  raised by user code: retry after .delay seconds

    Internal control signals derive from BaseException so that a user's
    ``except Exception`` cannot swallow them:

    Cancelled(BaseException)            the block was asked to stop (cancel, fail_fast, run timeout)
    LeaseLost(BaseException)            this worker no longer owns the task
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One problem found in a definition or in run parameters."""

    location: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = self.location or "<root>"
        if self.line is not None:
            where = f"{where} (line {self.line})"
        return f"{where}: {self.message}"


class FlowforgeError(Exception):
    """Base class of every error flowforge raises on purpose."""


class _ProblemsError(FlowforgeError):
    headline = "invalid input"

    def __init__(self, problems: list[Problem], source: str | None = None) -> None:
        self.problems = list(problems)
        self.source = source
        head = self.headline if source is None else f"{source}: {self.headline}"
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{head} ({len(self.problems)} problem(s)):\n{lines}")


class DefinitionError(_ProblemsError):
    """A workflow definition is invalid; ``problems`` lists every error with its location."""

    headline = "invalid workflow definition"


class ParameterError(_ProblemsError):
    """Run parameters are invalid; ``problems`` lists every error with its parameter name."""

    headline = "invalid run parameters"


class TemplateError(FlowforgeError):
    """A template failed to render: its message names the template and the cause."""

    def __init__(self, message: str, template: str | None = None) -> None:
        super().__init__(message)
        self.template = template


class NotFoundError(FlowforgeError):
    """A workflow, a workflow version or a run does not exist."""


class InvalidStateError(FlowforgeError):
    """The operation does not fit the current status of the run."""


class InvalidInputError(FlowforgeError):
    """A value given to an operation is invalid (a signal's payload, say); nothing changed."""


class ConfigurationError(FlowforgeError):
    """A setting, an environment variable or a secret source cannot be used."""


class StoreError(FlowforgeError):
    """The store failed after retrying transient errors."""


class BlockError(FlowforgeError):
    """A block attempt failed. ``error_type`` is the name shown as ``error.type``."""

    retryable: bool = True

    def __init__(self, message: str, error_type: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.error_type = error_type or type(self).__name__


class NonRetryableError(BlockError):
    """Raise from a block to fail it at once, whatever its retry policy."""

    retryable = False


class RetryLater(BlockError):
    """Raise from a block to ask for another attempt after ``delay`` seconds."""

    def __init__(self, message: str = "retry requested", delay: float = 1.0) -> None:
        super().__init__(message)
        self.delay = delay


class Cancelled(BaseException):
    """The block was asked to stop: run canceled, terminated, timed out or failed fast."""


class LeaseLost(BaseException):
    """This worker's lease on the task expired and another worker may hold it now."""
