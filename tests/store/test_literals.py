"""Inlined literals read back exactly as the values they stand for (PostgreSQL)."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from flowforge.store.literals import Literals

TRICKY = [
    "plain",
    "it's",
    "back\\slash",
    "'; DROP TABLE runs; --",
    "quote''s and \\' mixed",
    "ünïcødé ✓ 🚀",
    "new\nline\ttab",
    '{"json": "with \\"escapes\\""}',
    "",
]


@pytest.fixture
def pg():  # type: ignore[no-untyped-def]
    import os

    url = os.environ.get("FLOWFORGE_TEST_POSTGRES_URL")
    if url is None:
        pytest.skip("PostgreSQL: FLOWFORGE_TEST_POSTGRES_URL is not set")
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        yield conn


def _literals(conn) -> Literals:  # type: ignore[no-untyped-def]
    import psycopg

    return Literals(psycopg.pq.Escaping(conn.pgconn).escape_literal)


@pytest.mark.parametrize("value", [*TRICKY, 0, -7, 2**40, 1.5, -0.25, 1e300, True, False, None])
def test_a_literal_reads_back_as_its_value(pg, value) -> None:  # type: ignore[no-untyped-def]
    literals = _literals(pg)
    sql = literals.render("SELECT %(v)s", {"v": value})
    assert pg.execute(sql).fetchone()[0] == value


def test_timestamps_and_arrays_read_back(pg) -> None:  # type: ignore[no-untyped-def]
    literals = _literals(pg)
    moment = datetime(2026, 11, 22, 1, 2, 3, 456789, tzinfo=UTC)
    assert pg.execute(literals.render("SELECT %(t)s", {"t": moment})).fetchone()[0] == moment
    assert pg.execute(literals.render("SELECT %(a)s", {"a": TRICKY})).fetchone()[0] == TRICKY
    assert math.isinf(pg.execute(literals.render("SELECT %(f)s", {"f": math.inf})).fetchone()[0])
