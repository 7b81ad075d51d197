"""Search facts beside the FTS rowids, an index of attribute values, and a trigram index of
the word list (SQLite only).

A relevance tier reads up to 1,001 FTS matches and needs each one's SKU, name length, price,
category, brand and date (to score, sort and count facets). Joining every match to `products`
(a lookup by its text primary key, a wide row, and a JSON extraction for the brand) was 80 % of
that statement at 100k products: 8.3 ms against 1.5 ms without it (bench/RESULTS.md). So
`product_search_ids`, already keyed by the FTS rowid, carries those facts, written by the same
triggers that keep the FTS index in step with `products` (a price change, which the FTS index
ignores, updates its row in place). Category, brand and price filters are tested on it too;
only attribute filters read `products`.

Attribute filters (`size = 10`, `ram_gb >= 16`) extracted the value from each candidate's JSON:
at 100k products, "running shoes, $80-160, size 10" read 9,050 rows to find 606 (52 ms).
`product_attribute_values` holds every top-level number and text value by (name, value), kept
by triggers, so number filters are one index range, and case-insensitive text equality finds
its candidates by an ASCII-case-insensitive index (`NOCASE`) before the exact test on the JSON.

Spelling suggestions looked for words sharing a trigram with a typed word by testing every word
of the list (57 ms for one word at 100k products). `search_words_trgm` (FTS5's `trigram`
tokenizer over each word padded as pg_trgm pads it, `'  word '`) finds them from an index; the
similarity is still computed in Python with pg_trgm's formula. Where SQLite lacks the trigram
tokenizer (before 3.34), the table is not created and suggestions keep scanning the list.

PostgreSQL needs nothing: its tiers read `products` through its own indexes.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 19:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FACTS = "price_cents, category, brand, name_length, created_at"
BRAND = "substr(json_extract({row}.attributes, '$.brand'), 1, 100)"  # as products.brand


def _facts(row: str) -> str:
    return (
        f"{row}.price_cents, {row}.category, {BRAND.format(row=row)}, length({row}.name),"
        f" {row}.created_at"
    )


def _fts_values(row: str) -> str:
    """The FTS columns of a `products` row (as migration 0006 writes them)."""
    return (
        f"{row}.name,"
        f" coalesce(json_extract({row}.attributes, '$.brand'), '') || ' '"
        f" || replace({row}.category, '-', ' '),"
        f" coalesce((SELECT group_concat(value, ' ') FROM json_tree({row}.attributes)"
        f" WHERE type IN ('text', 'integer', 'real')), ''),"
        f" {row}.description"
    )


def _triggers(insert_ids: str) -> None:
    row_id = "(SELECT id FROM product_search_ids WHERE sku = new.sku)"
    insert = (
        f"{insert_ids};"
        " INSERT INTO products_fts (rowid, name, facets, attrs, description)"
        f" VALUES ({row_id}, {_fts_values('new')});"
    )
    delete = (
        "DELETE FROM products_fts WHERE rowid = (SELECT id FROM product_search_ids"
        " WHERE sku = old.sku); DELETE FROM product_search_ids WHERE sku = old.sku;"
    )
    op.execute("DROP TRIGGER products_search_ai")
    op.execute("DROP TRIGGER products_search_au")
    op.execute(f"CREATE TRIGGER products_search_ai AFTER INSERT ON products BEGIN {insert} END")
    op.execute(
        "CREATE TRIGGER products_search_au AFTER UPDATE OF sku, name, description, category,"
        f" attributes ON products BEGIN {delete} {insert} END"
    )


def _trigram_index() -> None:
    try:
        op.execute("CREATE VIRTUAL TABLE search_words_trgm USING fts5(word, tokenize = 'trigram')")
    except sa.exc.OperationalError:  # no trigram tokenizer (SQLite < 3.34): keep scanning
        return
    op.execute("INSERT INTO search_words_trgm (word) SELECT '  ' || word || ' ' FROM search_words")
    op.execute(
        "CREATE TRIGGER search_words_trgm_ai AFTER INSERT ON search_words BEGIN"
        " INSERT INTO search_words_trgm (word) VALUES ('  ' || new.word || ' '); END"
    )
    # the word's own rows by a MATCH (words are letters only, so quoting them is safe)
    op.execute(
        "CREATE TRIGGER search_words_trgm_ad AFTER DELETE ON search_words BEGIN"
        " DELETE FROM search_words_trgm WHERE rowid IN (SELECT rowid FROM search_words_trgm"
        " WHERE search_words_trgm MATCH '\"' || old.word || '\"'"
        " AND word = '  ' || old.word || ' '); END"
    )


def _attribute_index() -> None:
    op.execute(
        "CREATE TABLE product_attribute_values (name TEXT NOT NULL, value NOT NULL,"
        " sku VARCHAR(64) NOT NULL, PRIMARY KEY (name, value, sku)) WITHOUT ROWID"
    )
    op.execute("CREATE INDEX ix_product_attribute_values_sku ON product_attribute_values (sku)")
    op.execute(
        "CREATE INDEX ix_product_attribute_values_nocase"
        " ON product_attribute_values (name, value COLLATE NOCASE)"
    )
    values = (
        "INSERT OR IGNORE INTO product_attribute_values (name, value, sku)"
        " SELECT key, value, {row}.sku FROM json_each({row}.attributes)"
        " WHERE type IN ('integer', 'real', 'text')"
    )
    delete = "DELETE FROM product_attribute_values WHERE sku = old.sku;"
    op.execute(
        "INSERT OR IGNORE INTO product_attribute_values (name, value, sku)"
        " SELECT e.key, e.value, p.sku FROM products AS p, json_each(p.attributes) AS e"
        " WHERE e.type IN ('integer', 'real', 'text')"
    )
    new = values.format(row="new") + ";"
    op.execute(f"CREATE TRIGGER products_attributes_ai AFTER INSERT ON products BEGIN {new} END")
    op.execute(f"CREATE TRIGGER products_attributes_ad AFTER DELETE ON products BEGIN {delete} END")
    op.execute(
        "CREATE TRIGGER products_attributes_au AFTER UPDATE OF sku, attributes ON products"
        f" BEGIN {delete} {new} END"
    )


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    _trigram_index()
    _attribute_index()
    for column in (
        "price_cents INTEGER NOT NULL DEFAULT 0",
        "category VARCHAR(64) NOT NULL DEFAULT ''",
        "brand VARCHAR(100)",
        "name_length INTEGER NOT NULL DEFAULT 0",
        "created_at DATETIME",
    ):
        op.execute(f"ALTER TABLE product_search_ids ADD COLUMN {column}")
    op.execute(
        f"UPDATE product_search_ids AS m SET ({FACTS}) = ({_facts('p')})"
        " FROM products AS p WHERE p.sku = m.sku"
    )
    _triggers(f"INSERT INTO product_search_ids (sku, {FACTS}) VALUES (new.sku, {_facts('new')})")
    op.execute(
        "CREATE TRIGGER products_search_price AFTER UPDATE OF price_cents ON products BEGIN"
        " UPDATE product_search_ids SET price_cents = new.price_cents WHERE sku = new.sku; END"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for trigger in ("ai", "ad", "au"):
        op.execute(f"DROP TRIGGER products_attributes_{trigger}")
    op.execute("DROP TABLE product_attribute_values")
    op.execute("DROP TRIGGER IF EXISTS search_words_trgm_ai")
    op.execute("DROP TRIGGER IF EXISTS search_words_trgm_ad")
    op.execute("DROP TABLE IF EXISTS search_words_trgm")
    op.execute("DROP TRIGGER products_search_price")
    _triggers("INSERT INTO product_search_ids (sku) VALUES (new.sku)")
    for column in ("created_at", "name_length", "brand", "category", "price_cents"):
        op.execute(f"ALTER TABLE product_search_ids DROP COLUMN {column}")
