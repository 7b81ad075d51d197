"""The learned list of attribute values (`search_attributes`), for reading queries in words.

Agents write their constraints into the query ("running shoes size 10", "16gb laptop", "red
kettle"). To read them, search must know which attributes the catalog has, of which kind, and
which values: `search_attributes` counts, per (name, kind, value), the products that have it —
numbers, booleans and short texts (`app.catalog.search.text.attribute_facts`), and each
product's category — kept exact by the upsert path as `search_words` is. Search reads the most
common rows once a minute per instance (app/catalog/search/profile.py), never per request.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 06:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "search_attributes",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=1), nullable=False),
        sa.Column("value", sa.String(length=64), nullable=False),
        sa.Column("ndoc", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name", "kind", "value"),
    )
    op.create_index("ix_search_attributes_ndoc", "search_attributes", ["ndoc"])
    _fill()


def _fill() -> None:
    """The list from the products already there (later writes keep it up to date)."""
    from app.catalog.search.text import attribute_facts

    bind = op.get_bind()
    counts: dict[tuple[str, str, str], int] = {}
    rows = bind.execute(  # statement options: on the connection they would outlive the loop
        sa.text("SELECT category, attributes FROM products").execution_options(
            stream_results=True, yield_per=5000
        )
    )
    for category, attributes in rows:  # streamed: a large catalog is not held in memory
        for fact in attribute_facts(category, attributes):
            counts[fact] = counts.get(fact, 0) + 1
    if counts:
        bind.execute(
            sa.text(
                "INSERT INTO search_attributes (name, kind, value, ndoc)"
                " VALUES (:name, :kind, :value, :ndoc)"
            ),
            [{"name": n, "kind": k, "value": v, "ndoc": c} for (n, k, v), c in counts.items()],
        )


def downgrade() -> None:
    op.drop_index("ix_search_attributes_ndoc", "search_attributes")
    op.drop_table("search_attributes")
