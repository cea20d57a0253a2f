"""The ``flowforge`` command line: Typer commands, thin over :class:`flowforge.Engine`.

Module-level imports stay light (Typer and the standard library): the engine, Rich, YAML and
the Pydantic models are imported inside the commands, so ``flowforge run`` pays only for what
it uses.
"""
