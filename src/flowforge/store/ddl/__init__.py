"""The schema of a new database as plain SQL, one file per dialect.

``flowforge run`` on a fresh ``FLOWFORGE_HOME`` creates its tables from these files without
importing SQLAlchemy or Alembic (a tenth of a second and 20 MiB saved on the first run). The
files are generated from ``schema.py`` (``python -m flowforge.store.ddl``) and a test keeps them
equal to it; older databases are upgraded by the Alembic history instead.
"""

from __future__ import annotations

from pathlib import Path

from flowforge.store.revision import SCHEMA_REVISION

__all__ = ["HERE", "SCHEMA_REVISION", "generate", "statements"]

HERE = Path(__file__).parent


def statements(dialect: str) -> list[str]:
    """The statements that create the current schema, stamped at ``SCHEMA_REVISION``."""
    text = (HERE / f"{dialect}.sql").read_text()
    body = [part.strip() for part in text.split(";") if part.strip()]
    return [
        *body,
        "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL,"
        " CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))",
        f"INSERT INTO alembic_version (version_num) VALUES ('{SCHEMA_REVISION}')",
    ]


def generate(dialect: str) -> str:
    """The DDL of ``schema.metadata`` for ``dialect`` (needs SQLAlchemy)."""
    import sqlalchemy as sa
    from sqlalchemy.dialects import postgresql, sqlite

    from flowforge.store.schema import metadata

    target = postgresql.dialect() if dialect == "postgresql" else sqlite.dialect()  # type: ignore[no-untyped-call]
    parts = []
    for table in metadata.sorted_tables:
        parts.append(str(sa.schema.CreateTable(table).compile(dialect=target)).strip())
        for index in sorted(table.indexes, key=lambda index: str(index.name)):
            parts.append(str(sa.schema.CreateIndex(index).compile(dialect=target)).strip())
    return "".join(f"{part};\n\n" for part in parts)
