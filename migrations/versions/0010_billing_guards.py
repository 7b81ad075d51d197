"""Billing guards: `checkout_sessions` (an open Checkout Session is reused, not opened again) and
`billing_incidents` (what billing fixed on its own, e.g. a second paid subscription cancelled and
refunded, for the founder to see).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 04:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "checkout_sessions",
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("plan_code", sa.String(length=32), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("checkout_sessions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_checkout_sessions_open", ["account_id", "plan_code", "status"], unique=False
        )
    op.create_table(
        "billing_incidents",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("stripe_customer_id", sa.String(length=64), nullable=True),
        sa.Column("subscription_id", sa.String(length=64), nullable=False),
        sa.Column("kept_subscription_id", sa.String(length=64), nullable=True),
        sa.Column("event_id", sa.String(length=255), nullable=True),
        sa.Column("cancel_status", sa.String(length=80), nullable=False),
        sa.Column("refund_status", sa.String(length=80), nullable=False),
        sa.Column("refunded_amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("refund_ids", sa.JSON(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("kind", "subscription_id"),
    )
    with op.batch_alter_table("billing_incidents", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_billing_incidents_account_id"), ["account_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("billing_incidents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_billing_incidents_account_id"))
    op.drop_table("billing_incidents")
    with op.batch_alter_table("checkout_sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_checkout_sessions_open")
    op.drop_table("checkout_sessions")
