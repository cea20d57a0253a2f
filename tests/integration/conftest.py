"""Fixtures of the integration suite: an ``Engine`` on the parametrized store."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import flowforge


@pytest.fixture
def engine(store_url: str) -> Iterator[flowforge.Engine]:
    """An engine on a fresh store (SQLite file or PostgreSQL database of its own)."""
    with flowforge.Engine(store_url) as engine:
        yield engine
