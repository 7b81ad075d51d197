"""Settled usage: what billing reads (`usage_settlements`), apart from the usage counts shown.

The gate counts a call when it admits it and refunds it when the handler fails. A roll-up that ran
in between copied the not-yet-refunded call to `usage_rollups`, and the flush's high-water mark
never goes back down, so Stripe billed failed calls. Now the gate also counts each admission in a
time bucket; a refund takes the units out of the bucket it was admitted in; the roll-up settles a
bucket once it closed longer ago than any request can run, into this table, per account, period
and Redis epoch. The flush bills only settled units (and the settled degraded-mode calls, epoch
"pg" of `usage_rollups`). Existing rows: every count rolled up before this migration is taken as
settled (the refunds of those calls had long arrived).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 04:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "usage_settlements",
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("epoch", sa.String(length=32), nullable=False),
        sa.Column("settled", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"]),
        sa.PrimaryKeyConstraint("account_id", "period_start", "epoch"),
    )
    op.execute(
        "INSERT INTO usage_settlements (account_id, period_start, epoch, settled, seq, updated_at)"
        " SELECT account_id, period_start, epoch, sum(count), 0, CURRENT_TIMESTAMP"
        " FROM usage_rollups WHERE epoch <> 'pg' GROUP BY account_id, period_start, epoch"
    )


def downgrade() -> None:
    op.drop_table("usage_settlements")
