"""Regenerate the DDL files: ``python -m flowforge.store.ddl``."""

from __future__ import annotations

from flowforge.store.ddl import HERE, generate

for name in ("sqlite", "postgresql"):
    (HERE / f"{name}.sql").write_text(generate(name))
