"""Search at 1M: per-field text documents and a JSON containment index (PostgreSQL only).

`search_doc` holds every field with weights, but a GIN index has no weights: a query for "all
words in the name" found every product with the words anywhere and re-read each row to check the
weights (68 ms for a multi-word query at 1M; bench/RESULTS.md). Two more stored generated
documents, parsed exactly as the name and labels parts of `search_doc`, answer "in the name" and
"in the brand and category" from their own GIN index, or by a cheap scan for a common word
(stored, not expression indexes: a scan would otherwise re-parse every row it reads, so the
planner always chose the index, 100 ms for a word in 7 % of the products):

- `name_doc`:   to_tsvector(am_search, name), punctuation as spaces
- `labels_doc`: to_tsvector(am_search, brand + ' ' + category), punctuation as spaces
- `ix_products_attributes`: (attributes::jsonb) with `jsonb_path_ops`, for attribute equality
  filters (`size = 10`) written as containment (repository.ATTRIBUTES_JSONB: the same expression)

SQLite needs nothing: FTS5 column filters are answered from its index.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 16:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WORDS_ONLY = "regexp_replace({}, '[!-/:-@\\[-`{{-~]+', ' ', 'g')"
NAME_DOC = f"to_tsvector('am_search'::regconfig, {WORDS_ONLY.format('name')})"
LABELS_DOC = (
    "to_tsvector('am_search'::regconfig, "
    f"{WORDS_ONLY.format("coalesce(attributes->>'brand', '') || ' ' || category")})"
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "ALTER TABLE products"
        f" ADD COLUMN name_doc tsvector GENERATED ALWAYS AS ({NAME_DOC}) STORED,"
        f" ADD COLUMN labels_doc tsvector GENERATED ALWAYS AS ({LABELS_DOC}) STORED"
    )
    op.execute("CREATE INDEX ix_products_name_doc ON products USING gin (name_doc)")
    op.execute("CREATE INDEX ix_products_labels_doc ON products USING gin (labels_doc)")
    op.execute(
        "CREATE INDEX ix_products_attributes ON products"
        " USING gin ((attributes::jsonb) jsonb_path_ops)"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP INDEX ix_products_attributes")
    op.execute("ALTER TABLE products DROP COLUMN name_doc, DROP COLUMN labels_doc")
