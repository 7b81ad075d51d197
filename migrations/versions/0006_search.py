"""Search: a weighted full-text document per product, a word list for spelling suggestions.

PostgreSQL: a stored generated `tsvector` (`search_doc`) — name (A), brand and category (B),
attribute values (C), description (D) — under the text search configuration `am_search`
(English stemming without stop words, accents folded by `unaccent`), GIN-indexed; generated
`brand` and `gtin` columns; `search_words` with a trigram index (`pg_trgm`) for "did you mean".
Being generated columns, the document can never be stale, whichever path writes a product.

SQLite (the embedded default): an FTS5 table (`porter unicode61 remove_diacritics 2`, prefix
indexes) kept in step with `products` by triggers, through `product_search_ids` (FTS rowids that
survive a VACUUM, which may renumber the rowids of `products`); virtual generated `brand`/`gtin`.

Both: indexes for case-insensitive SKU lookup, GTIN/ISBN lookup, brand and category filters, and
price/newest sorts; the word list is filled from the existing products.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 14:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Keep in step with app/catalog/search/postgres.py (SEARCH_CONFIG) and repository.py (GTIN).
# ASCII punctuation becomes a space before parsing, as the query side splits words (text.py) and
# as SQLite's tokenizer does: PostgreSQL's parser would otherwise keep `1.7`, `-1000`, `+5` or
# `example.com` as single tokens that a typed `1.7L` or `T-1000` never matches.
WORDS_ONLY = "regexp_replace({}, '[!-/:-@\\[-`{{-~]+', ' ', 'g')"
PG_DOCUMENT = f"""
    setweight(to_tsvector('am_search'::regconfig, {WORDS_ONLY.format("name")}), 'A')
 || setweight(to_tsvector('am_search'::regconfig, {
    WORDS_ONLY.format("coalesce(attributes->>'brand', '') || ' ' || category")
}), 'B')
 || setweight(jsonb_to_tsvector('am_search'::regconfig, attributes::jsonb, '["string", "numeric"]'),
        'C')
 || setweight(to_tsvector('am_search'::regconfig, {WORDS_ONLY.format("description")}), 'D')
"""
# The GTIN/ISBN without hyphens and spaces (a query is compared the same way).
PG_GTIN = (
    "left(regexp_replace(coalesce(attributes->>'gtin', attributes->>'isbn', attributes->>'ean',"
    " attributes->>'upc'), '[[:space:]-]', '', 'g'), 32)"
)
SQLITE_GTIN = (
    "substr(replace(replace(coalesce(json_extract(attributes, '$.gtin'),"
    " json_extract(attributes, '$.isbn'), json_extract(attributes, '$.ean'),"
    " json_extract(attributes, '$.upc')), '-', ''), ' ', ''), 1, 32)"
)


def _sqlite_fts_values(row: str) -> str:
    """The FTS columns of a `products` row (`new` or `p`), as PostgreSQL's weighted parts."""
    return (
        f"{row}.name,"
        f" coalesce(json_extract({row}.attributes, '$.brand'), '') || ' '"
        f" || replace({row}.category, '-', ' '),"
        f" coalesce((SELECT group_concat(value, ' ') FROM json_tree({row}.attributes)"
        f" WHERE type IN ('text', 'integer', 'real')), ''),"
        f" {row}.description"
    )


def _upgrade_postgresql() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS unaccent")
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    # English stemming without the stop-word list: "on-ear", "down" and "over" are product words
    # (the few filler words a query may hold are dropped in app/catalog/search/text.py).
    op.execute(
        "CREATE TEXT SEARCH DICTIONARY am_english_stem (TEMPLATE = snowball, LANGUAGE = english)"
    )
    op.execute("CREATE TEXT SEARCH CONFIGURATION am_search (COPY = english)")
    op.execute(
        "ALTER TEXT SEARCH CONFIGURATION am_search"
        " ALTER MAPPING FOR asciiword, asciihword, hword_asciipart WITH am_english_stem"
    )
    op.execute(
        "ALTER TEXT SEARCH CONFIGURATION am_search"
        " ALTER MAPPING FOR hword, hword_part, word WITH unaccent, am_english_stem"
    )
    op.execute(
        "ALTER TABLE products"
        " ADD COLUMN brand varchar(100) GENERATED ALWAYS AS (left(attributes->>'brand', 100))"
        " STORED,"
        f" ADD COLUMN gtin varchar(32) GENERATED ALWAYS AS ({PG_GTIN}) STORED,"
        f" ADD COLUMN search_doc tsvector GENERATED ALWAYS AS ({PG_DOCUMENT}) STORED"
    )
    op.execute("CREATE INDEX ix_products_search_doc ON products USING gin (search_doc)")
    op.execute("CREATE INDEX ix_products_sku_lower ON products (lower(sku))")
    op.execute("CREATE INDEX ix_products_gtin ON products (gtin) WHERE gtin IS NOT NULL")
    op.execute("CREATE INDEX ix_products_brand_lower ON products (lower(brand))")
    op.execute("CREATE INDEX ix_products_price_sku ON products (price_cents, sku)")
    op.execute("CREATE INDEX ix_products_created_sku ON products (created_at, sku)")
    op.execute("CREATE INDEX ix_products_category_sku ON products (category, sku)")
    op.execute("CREATE INDEX ix_products_category_price ON products (category, price_cents, sku)")
    op.execute("CREATE TABLE search_words (word varchar(32) PRIMARY KEY, ndoc integer NOT NULL)")
    op.execute("CREATE INDEX ix_search_words_trgm ON search_words USING gin (word gin_trgm_ops)")


def _upgrade_sqlite() -> None:
    op.execute(
        "ALTER TABLE products ADD COLUMN brand VARCHAR(100)"
        " GENERATED ALWAYS AS (substr(json_extract(attributes, '$.brand'), 1, 100)) VIRTUAL"
    )
    op.execute(
        f"ALTER TABLE products ADD COLUMN gtin VARCHAR(32) GENERATED ALWAYS AS ({SQLITE_GTIN})"
        " VIRTUAL"
    )
    op.execute("CREATE INDEX ix_products_sku_lower ON products (lower(sku))")
    op.execute("CREATE INDEX ix_products_gtin ON products (gtin)")
    op.execute("CREATE INDEX ix_products_brand_lower ON products (lower(brand))")
    op.execute("CREATE INDEX ix_products_price_sku ON products (price_cents, sku)")
    op.execute("CREATE INDEX ix_products_created_sku ON products (created_at, sku)")
    op.execute("CREATE INDEX ix_products_category_sku ON products (category, sku)")
    op.execute("CREATE INDEX ix_products_category_price ON products (category, price_cents, sku)")
    op.execute("CREATE TABLE search_words (word VARCHAR(32) PRIMARY KEY, ndoc INTEGER NOT NULL)")
    op.execute(
        "CREATE TABLE product_search_ids (id INTEGER PRIMARY KEY, sku VARCHAR(64) NOT NULL UNIQUE)"
    )
    op.execute(
        "CREATE VIRTUAL TABLE products_fts USING fts5("
        "name, facets, attrs, description,"
        " tokenize = 'porter unicode61 remove_diacritics 2', prefix = '2 3 4')"
    )
    row_id = "(SELECT id FROM product_search_ids WHERE sku = new.sku)"
    insert = (
        "INSERT INTO product_search_ids (sku) VALUES (new.sku);"
        f" INSERT INTO products_fts (rowid, name, facets, attrs, description)"
        f" VALUES ({row_id}, {_sqlite_fts_values('new')});"
    )
    delete = (
        "DELETE FROM products_fts WHERE rowid = (SELECT id FROM product_search_ids"
        " WHERE sku = old.sku); DELETE FROM product_search_ids WHERE sku = old.sku;"
    )
    op.execute(f"CREATE TRIGGER products_search_ai AFTER INSERT ON products BEGIN {insert} END")
    op.execute(f"CREATE TRIGGER products_search_ad AFTER DELETE ON products BEGIN {delete} END")
    op.execute(
        "CREATE TRIGGER products_search_au AFTER UPDATE OF sku, name, description, category,"
        f" attributes ON products BEGIN {delete} {insert} END"
    )
    op.execute("INSERT INTO product_search_ids (sku) SELECT sku FROM products ORDER BY sku")
    op.execute(
        "INSERT INTO products_fts (rowid, name, facets, attrs, description)"
        f" SELECT m.id, {_sqlite_fts_values('p')}"
        " FROM products AS p JOIN product_search_ids AS m ON m.sku = p.sku"
    )


def _fill_words() -> None:
    """The word list from the products already there (later writes keep it up to date)."""
    from app.catalog.search.text import product_vocabulary

    bind = op.get_bind()
    counts: dict[str, int] = {}
    for name, category, attributes in bind.execute(
        sa.text("SELECT name, category, attributes FROM products")
    ):
        for word in product_vocabulary(name, category, attributes):
            counts[word] = counts.get(word, 0) + 1
    if counts:
        bind.execute(
            sa.text("INSERT INTO search_words (word, ndoc) VALUES (:word, :ndoc)"),
            [{"word": w, "ndoc": n} for w, n in counts.items()],
        )


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _upgrade_postgresql()
    else:
        _upgrade_sqlite()
    _fill_words()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TABLE search_words")
        for index in (
            "search_doc",
            "sku_lower",
            "gtin",
            "brand_lower",
            "price_sku",
            "created_sku",
            "category_sku",
            "category_price",
        ):
            op.execute(f"DROP INDEX ix_products_{index}")
        op.execute(
            "ALTER TABLE products DROP COLUMN search_doc, DROP COLUMN gtin, DROP COLUMN brand"
        )
        op.execute("DROP TEXT SEARCH CONFIGURATION am_search")
        op.execute("DROP TEXT SEARCH DICTIONARY am_english_stem")
        return
    for trigger in ("ai", "ad", "au"):
        op.execute(f"DROP TRIGGER products_search_{trigger}")
    op.execute("DROP TABLE products_fts")
    op.execute("DROP TABLE product_search_ids")
    op.execute("DROP TABLE search_words")
    for index in (
        "sku_lower",
        "gtin",
        "brand_lower",
        "price_sku",
        "created_sku",
        "category_sku",
        "category_price",
    ):
        op.execute(f"DROP INDEX ix_products_{index}")
    op.execute("ALTER TABLE products DROP COLUMN gtin")
    op.execute("ALTER TABLE products DROP COLUMN brand")
