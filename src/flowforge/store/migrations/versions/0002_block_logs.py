"""block logs: what each block attempt logged

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 04:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "block_logs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("block_id", sa.String(length=200), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("level", sa.String(length=10), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_block_logs")),
    )
    op.create_index(
        "ix_block_logs_run_id_block_id_attempt",
        "block_logs",
        ["run_id", "block_id", "attempt"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_block_logs_run_id_block_id_attempt", table_name="block_logs")
    op.drop_table("block_logs")
