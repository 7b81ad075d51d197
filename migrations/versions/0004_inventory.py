"""Inventory: the ordered change log behind `GET /v1/inventory/changes`, and idempotency keys.

On PostgreSQL every change row records the id of the transaction that wrote it
(`pg_current_xact_id()`, as a server default, so no writer can forget it); the feed serves a change
only once its transaction is older than every transaction still running. SQLite (one writer at a
time) stores 0 and is served in id order.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 11:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def _txid_default() -> sa.TextClause:
    if op.get_bind().dialect.name == "postgresql":
        return sa.text("(pg_current_xact_id()::text::bigint)")
    return sa.text("0")


def upgrade() -> None:
    op.create_table(
        "inventory_changes",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("txid", sa.BigInteger(), server_default=_txid_default(), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("stock", sa.Integer(), nullable=False),
        sa.Column("price_cents", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("changed_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("inventory_changes", schema=None) as batch_op:
        batch_op.create_index("ix_inventory_changes_txid_id", ["txid", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_inventory_changes_sku"), ["sku"], unique=False)
    op.create_table(
        "idempotency_keys",
        sa.Column("scope", sa.String(length=48), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("response", sa.JSON(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("scope", "key"),
    )
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_idempotency_keys_created_at"), ["created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_idempotency_keys_created_at"))
    op.drop_table("idempotency_keys")
    with op.batch_alter_table("inventory_changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_inventory_changes_sku"))
        batch_op.drop_index("ix_inventory_changes_txid_id")
    op.drop_table("inventory_changes")
