"""Generated catalogs for the search benchmark: the products, and loading them fast.

The products come from the seeded generators of `app.catalog.sample` (one maker per category,
weighted as in the sample catalog), varied so a large catalog has many distinct names and a
long-tailed vocabulary:

* a product line word drawn from ~30,000 invented words with a Zipf distribution (a few lines
  are very common, most are rare), in about 65 % of names;
* a variant suffix ("Gen 4", "2025 Edition", "2-Pack", …) in about 25 %;
* an accented word ("Crème", "Müller", "Señorita", …) in about 4 % of names and 2 % of
  descriptions; about 5 % of the invented words carry an accent too;
* a GTIN-13 on every branded product, as in the sample (books carry their ISBN);
* stock from the sample's distribution (about 8 % out of stock); 3 % have no inventory row.

SKUs are `<PREFIX>-<7 digits>` per category, unique. Generation is deterministic per size.

PostgreSQL: a dedicated database per size, migrated with Alembic, loaded with COPY
(`copy_records_to_table`) with the products' secondary indexes dropped first and re-created from
their own definitions afterwards (so "load" and "index" times are separate), then the search
vocabulary is rebuilt with the app's own function and the tables are VACUUM ANALYZEd. A database
whose product count, migrations and generator version match is reused (see `Meta`).

SQLite: a file in the temp directory, migrated by the app's own start-up migration, loaded with
`executemany` in one transaction (the FTS index is kept by the schema's triggers, if any).
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import importlib
import inspect
import itertools
import json
import os
import random
import sqlite3
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

from app.catalog.sample import CATEGORIES, _stock
from app.core.config import Settings

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
DB_PREFIX = "agentmall_bench_search"
GENERATOR_VERSION = 1  # bump when the generated products change
SEED = 20_261_201
CHUNK = 20_000  # rows generated and sent per COPY call
NOW = datetime(2026, 12, 1, tzinfo=UTC)  # fixed: the same catalog on every build

# -- generation ---------------------------------------------------------------------------------

SYLLABLES = (
    "ka ve lo ri sa mo ta ne ar el in or us ix en al ba co da fe gi ho ju lu ma "
    "na pe qua ro si tu va wy xe yo zo bri cla dra fle gro pla stra tre vin"
).split()
ACCENTS = str.maketrans({"e": "é", "o": "ö", "a": "å", "u": "ü", "n": "ñ", "i": "ï"})
ACCENTED_WORDS = (
    "Crème",
    "Café",
    "Élan",
    "Müller",
    "Señorita",
    "Björk",
    "Façade",
    "Noël",
    "Zürich",
    "São Paulo",
    "Ångström",
    "Crêpe",
    "Brûlée",
    "Jalapeño",
    "Naïve",
    "Smörgås",
    "Über",
    "Doña",
    "Fjällräv",
    "Château",
)
ACCENTED_SENTENCES = (
    "Tested in the Café Crème kitchen.",
    "Designed in Zürich.",
    "Finished à la française.",
    "Inspired by a Noël market in São Paulo.",
    "Über-quiet in daily use.",
)
SUFFIXES: tuple[Callable[[random.Random], str], ...] = (
    lambda r: f" Gen {r.randint(2, 9)}",
    lambda r: f" {r.randint(2019, 2026)} Edition",
    lambda r: f" Mk {('II', 'III', 'IV', 'V')[r.randrange(4)]}",
    lambda r: f" {r.choice((2, 3, 4, 6))}-Pack",
    lambda _: " Bundle",
    lambda _: " Refurbished",
    lambda _: " Limited Edition",
    lambda r: f" v{r.randint(2, 12)}",
)
LINE_WORDS = 30_000
ZIPF_S = 1.07
ZIPF_Q = 20  # Zipf-Mandelbrot offset: the commonest line word is in ~1.5 % of names


@dataclass(frozen=True)
class Generated:
    """One product row (products columns) and its stock (None: no inventory row)."""

    sku: str
    name: str
    description: str
    category: str
    price_cents: int
    attributes: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    stock: int | None


class Vocabulary:
    """Invented product-line words, drawn with a Zipf distribution."""

    def __init__(self, rng: random.Random, size: int = LINE_WORDS) -> None:
        words: list[str] = []
        seen: set[str] = set()
        while len(words) < size:
            word = "".join(rng.choice(SYLLABLES) for _ in range(rng.choice((2, 2, 3))))
            if word in seen or len(word) < 4:
                continue
            seen.add(word)
            if rng.random() < 0.05:  # an accented spelling
                position = rng.randrange(1, len(word))
                word = word[:position] + word[position:].translate(ACCENTS)
            words.append(word.capitalize())
        self.words = words
        weights = [1 / ((rank + ZIPF_Q) ** ZIPF_S) for rank in range(1, size + 1)]
        self.cumulative = list(itertools.accumulate(weights))

    def draw(self, rng: random.Random) -> str:
        target = rng.random() * self.cumulative[-1]
        return self.words[min(bisect.bisect(self.cumulative, target), len(self.words) - 1)]


def _ean13(rng: random.Random) -> str:
    """A GTIN-13 in the GS1 restricted-circulation range (prefix 2), as the sample uses."""
    digits = [2] + [rng.randint(0, 9) for _ in range(11)]
    total = sum(d * (3 if i % 2 else 1) for i, d in enumerate(digits))
    return "".join(map(str, digits)) + str((10 - total % 10) % 10)


def generate(size: int) -> Iterator[Generated]:
    """`size` products, the same ones for the same size on every call."""
    rng = random.Random(SEED + size)
    vocabulary = Vocabulary(random.Random(SEED))
    weights = list(itertools.accumulate(count for _, _, count, _ in CATEGORIES))
    numbers = [0] * len(CATEGORIES)
    span = int(timedelta(days=730).total_seconds())
    for _ in range(size):
        index = bisect.bisect(weights, rng.random() * weights[-1])
        category, prefix, _, maker = CATEGORIES[index]
        numbers[index] += 1
        draft = maker(rng)
        name, description = draft.name, draft.description
        attributes = {k: v for k, v in draft.attributes.items() if v is not None}
        brand = str(attributes.get("brand") or attributes.get("roaster") or "")
        if brand and name.startswith(brand + " "):
            head, rest = brand, name[len(brand) + 1 :]
        else:
            head, _, rest = name.partition(" ")
        if rng.random() < 0.65:
            line = vocabulary.draw(rng)
            name = f"{head} {line} {rest}" if rest else f"{head} {line}"
            attributes["series"] = line
        if rng.random() < 0.25:
            name += SUFFIXES[rng.randrange(len(SUFFIXES))](rng)
        if rng.random() < 0.04:
            name = f"{ACCENTED_WORDS[rng.randrange(len(ACCENTED_WORDS))]} {name}"
        if rng.random() < 0.02:
            description += " " + ACCENTED_SENTENCES[rng.randrange(len(ACCENTED_SENTENCES))]
        if "brand" in attributes:  # as in the sample: every branded product has a GTIN
            attributes["gtin"] = _ean13(rng)
        created = NOW - timedelta(seconds=rng.randrange(span))
        updated = created + (NOW - created) * rng.random()
        stock = _stock(rng) if rng.random() >= 0.03 else None
        yield Generated(
            sku=f"{prefix}-{numbers[index]:07d}",
            name=name[:200],
            description=description[:2000],
            category=category,
            price_cents=draft.price_cents,
            attributes=attributes,
            created_at=created,
            updated_at=updated,
            stock=stock,
        )


# -- product columns ----------------------------------------------------------------------------

# How each known products column is filled; migration 0006 may add generated columns (skipped:
# the database computes them) or plain ones (filled here if known, else left to their default).
COLUMN_VALUES: dict[str, Callable[[Generated], Any]] = {
    "sku": lambda g: g.sku,
    "name": lambda g: g.name,
    "description": lambda g: g.description,
    "category": lambda g: g.category,
    "price_cents": lambda g: g.price_cents,
    "currency": lambda _: "usd",
    "attributes": lambda g: json.dumps(g.attributes, ensure_ascii=False, separators=(",", ":")),
    "created_at": lambda g: g.created_at,
    "updated_at": lambda g: g.updated_at,
    "brand": lambda g: g.attributes.get("brand"),
}


@dataclass
class Column:
    name: str
    required: bool  # NOT NULL with no default


def writable(columns: list[Column], table: str) -> list[str]:
    """The columns to write: known ones; an unknown required one is an error naming it."""
    names = []
    for column in columns:
        if column.name in COLUMN_VALUES:
            names.append(column.name)
        elif column.required:
            raise RuntimeError(
                f"{table}.{column.name} is NOT NULL with no default and the bench does not know "
                "how to fill it: add it to bench.search_catalog.COLUMN_VALUES"
            )
    return names


# -- build records ------------------------------------------------------------------------------


@dataclass
class Meta:
    """What a built database holds and how long building it took (stored with the database)."""

    size: int
    generator: int
    migrations: str
    built_at: str
    seconds: dict[str, float] = field(default_factory=dict)
    vocabulary: str = ""  # what rebuilt the search vocabulary (or why nothing did)

    def matches(self, size: int, migrations: str) -> bool:
        return (
            self.size == size
            and self.generator == GENERATOR_VERSION
            and self.migrations == migrations
        )


def migrations_fingerprint() -> str:
    """A hash of the migration files and of the sample generators: a database built on other
    migrations, or with other generators, is rebuilt."""
    digest = hashlib.sha256()
    paths = sorted((ROOT / "migrations" / "versions").glob("*.py"))
    for path in [*paths, ROOT / "app" / "catalog" / "sample.py"]:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def label(size: int) -> str:
    if size % 1_000_000 == 0:
        return f"{size // 1_000_000}m"
    if size % 1000 == 0:
        return f"{size // 1000}k"
    return str(size)


def pg_database(size: int) -> str:
    return f"{DB_PREFIX}_{label(size)}"


def pg_url(database: str, driver: str = "postgresql") -> str:
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return f"{base}/{database}".replace("postgresql://", f"{driver}://", 1)


def app_database_url(size: int) -> str:
    return Settings(DATABASE_URL=pg_url(pg_database(size))).DATABASE_URL


def sqlite_path(size: int) -> Path:
    return Path(tempfile.gettempdir()) / f"{DB_PREFIX}_{label(size)}.sqlite3"


def sqlite_url(size: int) -> str:
    return f"sqlite+aiosqlite:///{sqlite_path(size).as_posix()}"


# -- the vocabulary hook --------------------------------------------------------------------------

# After a bulk load that bypassed the upsert path, the search word list must be rebuilt. The app's
# own functions are preferred, in this order: a session-only rebuild (one of VOCABULARY_NAMES),
# then `rebuild_words(session, counts)` with the counts of `product_vocabulary` per product (as
# migration 0006 computes them); failing both, the bench fills `search_words` as 0006 does.
VOCABULARY_NAMES = ("rebuild_vocabulary", "rebuild_search_words", "refresh_vocabulary")
COUNTS_NAMES = ("rebuild_words",)
INDEX_NAMES = ("rebuild_search_index", "rebuild_index")
WordsOf = Callable[[str, str, Any], set[str]]


def _search_function(names: tuple[str, ...]) -> tuple[str, Callable[..., Awaitable[Any]] | None]:
    """The app's coroutine function called `names[i]` in `app.catalog.search` or its modules."""
    try:
        package = importlib.import_module("app.catalog.search")
    except ModuleNotFoundError:
        return "app.catalog.search does not exist", None
    modules = [package]
    for path in sorted(Path(package.__file__ or "").parent.glob("*.py")):
        if not path.stem.startswith("__"):
            modules.append(importlib.import_module(f"app.catalog.search.{path.stem}"))
    for name in names:
        for module in modules:
            function = getattr(module, name, None)
            if function is not None and inspect.iscoroutinefunction(function):
                return f"{function.__module__}.{name}", function
    return f"no {' / '.join(names)} in app.catalog.search", None


async def _with_session(url: str, call: Callable[[AsyncSession], Awaitable[Any]]) -> None:
    args = {"statement_cache_size": 0} if not url.startswith("sqlite") else {"timeout": 60}
    engine = create_async_engine(url, poolclass=NullPool, connect_args=args)
    try:
        async with async_sessionmaker(engine, expire_on_commit=False)() as session:
            await call(session)
            await session.commit()
    finally:
        await engine.dispose()


async def rebuild_vocabulary(url: str) -> str:
    """Rebuild the search word list of a bulk-loaded catalog; returns what did it."""
    what, function = _search_function(VOCABULARY_NAMES)
    if function is not None:
        await _with_session(url, function)
        return what
    vocabulary = _product_vocabulary()
    if vocabulary is None:
        return f"HOOK: {what} and no product_vocabulary: search_words not rebuilt"
    counts = await vocabulary_counts(url, vocabulary)
    with_counts, function = _search_function(COUNTS_NAMES)
    if function is not None:
        rebuild = function

        async def call(session: AsyncSession) -> None:
            await rebuild(session, counts)

        await _with_session(url, call)
        return f"{with_counts}(session, product_vocabulary counts): {len(counts):,} words"
    await write_words(url, counts)
    return f"HOOK: {with_counts}; search_words filled as migration 0006 does: {len(counts):,}"


async def run_index_hook(url: str) -> str:
    """SQLite: the FTS table is kept by triggers; call an app rebuild function if there is one."""
    what, function = _search_function(INDEX_NAMES)
    if function is None:
        return f"{what} (FTS kept by the schema's triggers)"
    await _with_session(url, function)
    return what


def _product_vocabulary() -> WordsOf | None:
    try:
        module = importlib.import_module("app.catalog.search.text")
    except ModuleNotFoundError:
        return None
    function = getattr(module, "product_vocabulary", None)
    return function if callable(function) else None


async def vocabulary_counts(url: str, vocabulary: WordsOf) -> dict[str, int]:
    """Words per number of products, as migration 0006's `_fill_words` counts them."""
    counts: dict[str, int] = {}
    select = "SELECT name, category, attributes FROM products"
    if url.startswith("sqlite"):

        def read() -> None:
            conn = sqlite3.connect(url.split(":///", 1)[1])
            try:
                for name, category, attributes in conn.execute(select):
                    for word in vocabulary(name, category, attributes):
                        counts[word] = counts.get(word, 0) + 1
            finally:
                conn.close()

        await asyncio.to_thread(read)
        return counts
    conn = await asyncpg.connect(pg_url(url.rsplit("/", 1)[1]))
    try:
        async with conn.transaction():
            async for name, category, attributes in conn.cursor(select, prefetch=5000):
                for word in vocabulary(name, category, attributes):
                    counts[word] = counts.get(word, 0) + 1
    finally:
        await conn.close()
    return counts


async def write_words(url: str, counts: dict[str, int]) -> None:
    rows = list(counts.items())
    if url.startswith("sqlite"):

        def write() -> None:
            conn = sqlite3.connect(url.split(":///", 1)[1])
            try:
                with conn:
                    conn.execute("DELETE FROM search_words")
                    conn.executemany("INSERT INTO search_words (word, ndoc) VALUES (?, ?)", rows)
            finally:
                conn.close()

        await asyncio.to_thread(write)
        return
    conn = await asyncpg.connect(pg_url(url.rsplit("/", 1)[1]))
    try:
        async with conn.transaction():
            await conn.execute("TRUNCATE search_words")
            await conn.copy_records_to_table("search_words", records=rows, columns=["word", "ndoc"])
    finally:
        await conn.close()


# -- PostgreSQL ---------------------------------------------------------------------------------


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def alembic_config(url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["database_url"] = url
    config.attributes["configure_logger"] = False
    return config


def alembic_head() -> str:
    head = ScriptDirectory.from_config(alembic_config("")).get_current_head()
    return head or ""


async def read_meta(database: str) -> tuple[Meta | None, int | None, str | None]:
    """(stored meta, product count, alembic revision) of an existing database, else Nones."""
    try:
        conn = await asyncpg.connect(pg_url(database))
    except asyncpg.InvalidCatalogNameError:
        return None, None, None
    try:
        comment = await conn.fetchval(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1",
            database,
        )
        try:
            count = int(await conn.fetchval("SELECT count(*) FROM products"))
            revision = await conn.fetchval("SELECT version_num FROM alembic_version")
        except asyncpg.UndefinedTableError:
            return None, None, None
    finally:
        await conn.close()
    meta = Meta(**json.loads(comment)) if comment else None
    return meta, count, revision


async def pg_build(size: int, *, rebuild: bool, log: Callable[[str], None]) -> tuple[Meta, bool]:
    """The database for `size`, built unless a matching one exists; (meta, reused)."""
    database = pg_database(size)
    fingerprint = migrations_fingerprint()
    meta, count, revision = await read_meta(database)
    if (
        not rebuild
        and meta is not None
        and meta.matches(size, fingerprint)
        and count == size
        and revision == alembic_head()
    ):
        log(f"{database}: reusing ({count:,} products, built {meta.built_at})")
        return meta, True
    log(f"{database}: building {size:,} products")
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    await _admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    await _admin(f'CREATE DATABASE "{database}"')
    url = app_database_url(size)
    await asyncio.to_thread(command.upgrade, alembic_config(url), "head")
    seconds["migrate"] = time.perf_counter() - started
    conn = await asyncpg.connect(pg_url(database))
    try:
        await conn.execute("SET maintenance_work_mem = '1GB'; SET synchronous_commit = off")
        indexes = await secondary_indexes(conn, ("products", "inventory"))
        for name, _ in indexes:
            await conn.execute(f'DROP INDEX "{name}"')
        seconds["load"] = await pg_copy(conn, size, log)
        log(f"  loaded in {seconds['load']:.1f}s; re-creating {len(indexes)} indexes")
        started = time.perf_counter()
        for name, definition in indexes:
            t0 = time.perf_counter()
            await conn.execute(definition)
            log(f"  {name}: {time.perf_counter() - t0:.1f}s")
        seconds["index"] = time.perf_counter() - started
    finally:
        await conn.close()
    started = time.perf_counter()
    vocabulary = await rebuild_vocabulary(url)
    seconds["vocabulary"] = time.perf_counter() - started
    log(f"  vocabulary: {vocabulary} ({seconds['vocabulary']:.1f}s)")
    conn = await asyncpg.connect(pg_url(database))
    try:
        started = time.perf_counter()
        await conn.execute("SET maintenance_work_mem = '1GB'")
        await conn.execute("VACUUM (ANALYZE)")
        seconds["vacuum_analyze"] = time.perf_counter() - started
        meta = Meta(
            size=size,
            generator=GENERATOR_VERSION,
            migrations=fingerprint,
            built_at=datetime.now(UTC).isoformat(timespec="seconds"),
            seconds={k: round(v, 2) for k, v in seconds.items()},
            vocabulary=vocabulary,
        )
        comment = json.dumps(asdict(meta)).replace("'", "''")
        await conn.execute(f"COMMENT ON DATABASE \"{database}\" IS '{comment}'")
    finally:
        await conn.close()
    log(f"  built: {meta.seconds}")
    return meta, False


async def secondary_indexes(
    conn: asyncpg.Connection, tables: tuple[str, ...]
) -> list[tuple[str, str]]:
    """(name, CREATE INDEX statement) of the indexes on `tables` that back no constraint."""
    rows = await conn.fetch(
        """
        SELECT c.relname AS name, pg_get_indexdef(i.indexrelid) AS definition
        FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        WHERE i.indrelid = ANY($1::regclass[])
          AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)
        ORDER BY c.relname
        """,
        list(tables),
    )
    return [(r["name"], r["definition"]) for r in rows]


async def table_columns(conn: asyncpg.Connection, table: str) -> list[Column]:
    rows = await conn.fetch(
        """
        SELECT column_name, is_nullable, column_default, is_generated, is_identity
        FROM information_schema.columns
        WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position
        """,
        table,
    )
    return [
        Column(
            r["column_name"],
            r["is_nullable"] == "NO" and r["column_default"] is None and r["is_identity"] == "NO",
        )
        for r in rows
        if r["is_generated"] != "ALWAYS"
    ]


async def pg_copy(conn: asyncpg.Connection, size: int, log: Callable[[str], None]) -> float:
    """COPY the generated products and their stock; returns the seconds it took."""
    columns = writable(await table_columns(conn, "products"), "products")
    getters = [COLUMN_VALUES[c] for c in columns]
    started = time.perf_counter()
    stock: list[tuple[str, int, datetime]] = []
    batch: list[tuple[Any, ...]] = []
    done = 0
    async with conn.transaction():
        for product in generate(size):
            batch.append(tuple(get(product) for get in getters))
            if product.stock is not None:
                stock.append((product.sku, product.stock, product.updated_at))
            if len(batch) >= CHUNK:
                await conn.copy_records_to_table("products", records=batch, columns=columns)
                done += len(batch)
                batch = []
                if done % 200_000 == 0:
                    log(f"  {done:,} products ({time.perf_counter() - started:.0f}s)")
        if batch:
            await conn.copy_records_to_table("products", records=batch, columns=columns)
        for start in range(0, len(stock), 100_000):
            await conn.copy_records_to_table(
                "inventory",
                records=stock[start : start + 100_000],
                columns=["sku", "quantity", "updated_at"],
            )
    return time.perf_counter() - started


async def pg_sizes(size: int) -> dict[str, Any]:
    """Table and index sizes (bytes) of the products and search tables, measured now."""
    conn = await asyncpg.connect(pg_url(pg_database(size)))
    try:
        tables = await conn.fetch(
            """
            SELECT c.relname AS name, pg_relation_size(c.oid) AS heap,
                   pg_total_relation_size(c.oid) AS total, pg_indexes_size(c.oid) AS indexes
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'public' AND c.relkind = 'r'
              AND (c.relname IN ('products', 'inventory') OR c.relname LIKE 'search%')
            ORDER BY c.relname
            """
        )
        indexes = await conn.fetch(
            """
            SELECT t.relname AS "table", c.relname AS name, a.amname AS method,
                   pg_relation_size(c.oid) AS bytes
            FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
            JOIN pg_class t ON t.oid = i.indrelid JOIN pg_am a ON a.oid = c.relam
            JOIN pg_namespace n ON n.oid = t.relnamespace
            WHERE n.nspname = 'public'
              AND (t.relname IN ('products', 'inventory') OR t.relname LIKE 'search%')
            ORDER BY t.relname, c.relname
            """
        )
        words = None
        if any(t["name"] == "search_words" for t in tables):
            words = int(await conn.fetchval("SELECT count(*) FROM search_words"))
    finally:
        await conn.close()
    return {
        "tables": {r["name"]: {k: int(r[k]) for k in ("heap", "total", "indexes")} for r in tables},
        "indexes": [dict(r) for r in indexes],
        "search_words": words,
    }


# -- SQLite -------------------------------------------------------------------------------------


def _sqlite_time(value: datetime) -> str:
    """How SQLAlchemy stores a (UTC) DateTime on SQLite."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _sqlite_meta_path(size: int) -> Path:
    return sqlite_path(size).with_suffix(".meta.json")


def _sqlite_existing(size: int) -> Meta | None:
    path, meta_path = sqlite_path(size), _sqlite_meta_path(size)
    if not path.exists() or not meta_path.exists():
        return None
    meta = Meta(**json.loads(meta_path.read_text()))
    if not meta.matches(size, migrations_fingerprint()):
        return None
    conn = sqlite3.connect(path)
    try:
        count = conn.execute("SELECT count(*) FROM products").fetchone()[0]
        revision = conn.execute("SELECT version_num FROM alembic_version").fetchone()[0]
    except sqlite3.Error:
        return None
    finally:
        conn.close()
    return meta if count == size and revision == alembic_head() else None


def _sqlite_load(path: Path, size: int) -> None:
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA synchronous = OFF")
        info = conn.execute("PRAGMA table_xinfo(products)").fetchall()
        # (cid, name, type, notnull, default, pk, hidden): hidden 2/3 = generated
        columns = writable(
            [Column(r[1], bool(r[3]) and r[4] is None and not r[5]) for r in info if r[6] == 0],
            "products",
        )
        columns = [c for c in columns if c in COLUMN_VALUES]
        getters = [COLUMN_VALUES[c] for c in columns]
        marks = ", ".join("?" for _ in columns)
        insert = f"INSERT INTO products ({', '.join(columns)}) VALUES ({marks})"
        products: list[tuple[Any, ...]] = []
        stock: list[tuple[str, int, str]] = []
        for product in generate(size):
            row = [get(product) for get in getters]
            products.append(tuple(_sqlite_time(v) if isinstance(v, datetime) else v for v in row))
            if product.stock is not None:
                stock.append((product.sku, product.stock, _sqlite_time(product.updated_at)))
        with conn:
            conn.executemany(insert, products)
            conn.executemany(
                "INSERT INTO inventory (sku, quantity, updated_at) VALUES (?, ?, ?)", stock
            )
        conn.execute("ANALYZE")
    finally:
        conn.close()


async def sqlite_build(
    size: int, *, rebuild: bool, log: Callable[[str], None]
) -> tuple[Meta, bool]:
    """The SQLite file for `size`, built unless a matching one exists; (meta, reused)."""
    from app.core.embedded import migrate_embedded_database

    path = sqlite_path(size)
    existing = None if rebuild else _sqlite_existing(size)
    if existing is not None:
        log(f"{path}: reusing ({size:,} products, built {existing.built_at})")
        return existing, True
    log(f"{path}: building {size:,} products")
    for stale in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        stale.unlink(missing_ok=True)
    seconds: dict[str, float] = {}
    url = sqlite_url(size)
    started = time.perf_counter()
    await migrate_embedded_database(Settings(_env_file=None, DATABASE_URL=url))  # type: ignore[call-arg]
    seconds["migrate"] = time.perf_counter() - started
    started = time.perf_counter()
    await asyncio.to_thread(_sqlite_load, path, size)
    seconds["load"] = time.perf_counter() - started
    log(f"  loaded in {seconds['load']:.1f}s")
    started = time.perf_counter()
    index = await run_index_hook(url)
    seconds["index"] = time.perf_counter() - started
    started = time.perf_counter()
    vocabulary = await rebuild_vocabulary(url)
    seconds["vocabulary"] = time.perf_counter() - started
    log(f"  index: {index}; vocabulary: {vocabulary}")
    meta = Meta(
        size=size,
        generator=GENERATOR_VERSION,
        migrations=migrations_fingerprint(),
        built_at=datetime.now(UTC).isoformat(timespec="seconds"),
        seconds={k: round(v, 2) for k, v in seconds.items()},
        vocabulary=vocabulary,
    )
    _sqlite_meta_path(size).write_text(json.dumps(asdict(meta)))
    log(f"  built: {meta.seconds}")
    return meta, False


def sqlite_sizes(size: int) -> dict[str, Any]:
    """Bytes per table and index (the dbstat virtual table), and the file size."""
    path = sqlite_path(size)
    conn = sqlite3.connect(path)
    try:
        objects = dict(
            conn.execute("SELECT name, type FROM sqlite_master WHERE name IS NOT NULL").fetchall()
        )
        stats = conn.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name").fetchall()
        words = None
        if "search_words" in objects:
            words = int(conn.execute("SELECT count(*) FROM search_words").fetchone()[0])
    finally:
        conn.close()
    return {
        "file": path.stat().st_size,
        "objects": {name: {"type": objects.get(name, "?"), "bytes": int(b)} for name, b in stats},
        "search_words": words,
    }
