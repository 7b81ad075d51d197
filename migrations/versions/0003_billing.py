"""Billing: processed Stripe events, the bootstrap's Stripe ids, the meter outbox, quota notices.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 11:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    # one account per Stripe customer: webhook events and meter usage find exactly one
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.create_index("ux_accounts_stripe_customer_id", ["stripe_customer_id"], unique=True)
    op.create_table(
        "stripe_events",
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=True),
        sa.Column("processed_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "billing_settings",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "billing_periods",
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("period_start", TS, nullable=False),
        sa.Column("period_end", TS, nullable=False),
        sa.Column("plan_code", sa.String(length=32), nullable=False),
        sa.Column("stripe_customer_id", sa.String(length=64), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"]),
        sa.ForeignKeyConstraint(["plan_code"], ["plans.code"]),
        sa.PrimaryKeyConstraint("account_id", "period_start"),
    )
    op.create_table(
        "meter_reports",
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("period_start", TS, nullable=False),
        sa.Column("reported", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"]),
        sa.PrimaryKeyConstraint("account_id", "period_start"),
    )
    op.create_table(
        "meter_events",
        sa.Column("identifier", sa.String(length=100), nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("stripe_customer_id", sa.String(length=64), nullable=False),
        sa.Column("period_start", TS, nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.Column("event_time", TS, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("sent_at", TS, nullable=True),
        sa.Column("refused_at", TS, nullable=True),
        sa.Column("refusal", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"]),
        sa.PrimaryKeyConstraint("identifier"),
    )
    with op.batch_alter_table("meter_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_meter_events_account_id"), ["account_id"], unique=False
        )
    op.create_table(
        "usage_notices",
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("period_start", TS, nullable=False),
        sa.Column("threshold", sa.Integer(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("sent_at", TS, nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"]),
        sa.PrimaryKeyConstraint("account_id", "period_start", "threshold"),
    )


def downgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_index("ux_accounts_stripe_customer_id")
    op.drop_table("usage_notices")
    with op.batch_alter_table("meter_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_meter_events_account_id"))
    op.drop_table("meter_events")
    op.drop_table("meter_reports")
    op.drop_table("billing_periods")
    op.drop_table("billing_settings")
    op.drop_table("stripe_events")
