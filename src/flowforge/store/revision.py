"""The schema revision this code expects (a test keeps it equal to the Alembic head)."""

from __future__ import annotations

SCHEMA_REVISION = "0002"
