"""The developer portal: email sign-in links and browser sessions, each stored as a SHA-256 hash.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 14:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "portal_login_links",
        sa.Column("token_hash", sa.String(length=64), primary_key=True),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_portal_login_links_email", "portal_login_links", ["email"])
    op.create_table(
        "portal_sessions",
        sa.Column("id_hash", sa.String(length=64), primary_key=True),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"]),
    )
    op.create_index("ix_portal_sessions_account_id", "portal_sessions", ["account_id"])


def downgrade() -> None:
    op.drop_table("portal_sessions")
    op.drop_table("portal_login_links")
