"""Shared fixtures: a real store per test, on SQLite and (when available) PostgreSQL.

PostgreSQL: ``FLOWFORGE_TEST_POSTGRES_URL`` names an admin connection (``make test`` sets it
when PostgreSQL answers on 127.0.0.1:5432). The session migrates one template database of its
own and every test gets ``CREATE DATABASE … TEMPLATE`` of it; all are dropped at the end, so
runs never collide. With ``CI`` set, a missing PostgreSQL fails the suite instead of skipping.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_ADMIN_URL = os.environ.get("FLOWFORGE_TEST_POSTGRES_URL")
STORES = ["sqlite", "postgres"]


def _pg_url(database: str) -> str:
    assert PG_ADMIN_URL is not None
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return f"{base}/{database}"


def _admin(sql: str) -> None:
    import psycopg

    assert PG_ADMIN_URL is not None
    with psycopg.connect(
        PG_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://"), autocommit=True
    ) as conn:
        conn.execute(sql)


class PostgresDatabases:
    """Makes a migrated template once, then one database per test from it."""

    def __init__(self) -> None:
        self.prefix = f"fftest_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self.template = f"{self.prefix}_template"
        self.made: list[str] = []
        self.ready = False

    def new(self) -> str:
        if not self.ready:
            from flowforge.store import open_store

            _admin(f'CREATE DATABASE "{self.template}"')
            self.made.append(self.template)
            open_store(_pg_url(self.template)).close()
            self.ready = True
        name = f"{self.prefix}_{len(self.made)}"
        _admin(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        self.made.append(name)
        return _pg_url(name)

    def drop_all(self) -> None:
        for name in reversed(self.made):
            try:
                _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except Exception as exc:
                print(f"could not drop test database {name}: {exc}")


@pytest.fixture(scope="session")
def pg_databases() -> Iterator[PostgresDatabases | None]:
    if PG_ADMIN_URL is None:
        if os.environ.get("CI"):
            pytest.fail(
                "CI is set but FLOWFORGE_TEST_POSTGRES_URL is not: PostgreSQL tests "
                "must run in CI (make test sets it when PostgreSQL answers)"
            )
        yield None
        return
    databases = PostgresDatabases()
    try:
        yield databases
    finally:
        databases.drop_all()


@pytest.fixture(params=STORES)
def store_url(
    request: pytest.FixtureRequest, tmp_path: Path, pg_databases: PostgresDatabases | None
) -> str:
    """A fresh, migrated store: an SQLite file, or a PostgreSQL database of its own."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'flowforge.db'}"
    if pg_databases is None:
        pytest.skip(
            "PostgreSQL: FLOWFORGE_TEST_POSTGRES_URL is not set (make test sets it when "
            "PostgreSQL answers on 127.0.0.1:5432)"
        )
    return pg_databases.new()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'flowforge.db'}"
