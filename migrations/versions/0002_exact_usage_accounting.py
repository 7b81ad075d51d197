"""Exact usage accounting: roll-up rows versioned by the usage hash's change counter (not a
clock), and requests served while Redis was unreachable kept by request id until settled.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("usage_rollups", schema=None) as batch_op:
        batch_op.alter_column("synced_at", new_column_name="seq")
    # The old values were snapshot times in epoch ms; change counters start small. Zero lets the
    # next snapshot of each hash (absolute counts, the newest there are) overwrite the row.
    op.execute("UPDATE usage_rollups SET seq = 0")
    op.create_table(
        "degraded_calls",
        sa.Column("request_id", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("endpoint", sa.String(length=48), nullable=False),
        sa.Column("units", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"]),
        sa.PrimaryKeyConstraint("request_id"),
    )
    with op.batch_alter_table("degraded_calls", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_degraded_calls_account_id"), ["account_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("degraded_calls", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_degraded_calls_account_id"))
    op.drop_table("degraded_calls")
    with op.batch_alter_table("usage_rollups", schema=None) as batch_op:
        batch_op.alter_column("seq", new_column_name="synced_at")
