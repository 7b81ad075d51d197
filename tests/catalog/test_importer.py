"""The catalog import command, its reader and the packaged sample catalog."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import sqlalchemy as sa
from sqlalchemy import event

import app.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from app.catalog import importer, repository
from app.catalog.importer import ImportFileError, import_rows, load_sample_if_empty, read_rows
from app.catalog.sample import SAMPLE_CATALOG, sample_products, to_jsonl
from app.catalog.schemas import ProductIn
from app.core.config import Settings, get_settings
from app.core.db import Database
from app.core.embedded import migrate_embedded_database


def product(sku: str, **overrides: Any) -> dict[str, Any]:
    """A valid raw row."""
    row = {
        "sku": sku,
        "name": f"Product {sku}",
        "description": "A thing.",
        "category": "gadgets",
        "price_cents": 1999,
        "currency": "usd",
        "attributes": {"color": "red"},
        "stock": 5,
    }
    return row | overrides


def write_jsonl(path: Path, lines: list[Any]) -> Path:
    """Each item as one line: dicts as JSON, strings verbatim."""
    text = "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines)
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path}/t.db"


@pytest_asyncio.fixture
async def database(db_url: str) -> AsyncIterator[Database]:
    settings = Settings(DATABASE_URL=db_url)
    await migrate_embedded_database(settings)  # the real schema: search tables and triggers too
    db = Database(settings)
    yield db
    await db.dispose()


@pytest.fixture
def cli_env(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Point `get_settings()` (used by `main`) at the test database."""
    monkeypatch.setenv("DATABASE_URL", db_url)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


async def product_count(db: Database) -> int:
    async with db.sessionmaker() as session:
        return await repository.count(session)


@pytest.mark.asyncio
async def test_jsonl_import_creates_then_updates(database: Database, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "p.jsonl.gz", [product(f"SKU-{i}") for i in range(5)])

    first = await import_rows(database, read_rows(path), progress=False)
    assert (first.created, first.updated, first.rejected, first.rows) == (5, 0, [], 5)

    write_jsonl(path, [product(f"SKU-{i}", price_cents=2500, stock=0) for i in range(5)])
    second = await import_rows(database, read_rows(path), progress=False)
    assert (second.created, second.updated, second.rejected) == (0, 5, [])

    async with database.sessionmaker() as session:
        found = await repository.get(session, "SKU-3")
    assert found is not None
    assert (found[0].price_cents, found[1]) == (2500, 0)
    assert await product_count(database) == 5


@pytest.mark.asyncio
async def test_each_batch_is_its_own_transaction(database: Database, tmp_path: Path) -> None:
    commits: list[object] = []
    event.listen(database.engine.sync_engine, "commit", commits.append)
    path = write_jsonl(tmp_path / "p.jsonl", [product(f"SKU-{i}") for i in range(5)])

    report = await import_rows(database, read_rows(path), batch_size=2, progress=False)

    assert (report.created, len(commits)) == (5, 3)


@pytest.mark.asyncio
async def test_csv_import_with_attributes(database: Database, tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text(
        "\ufeffsku,name,description,category,price_cents,currency,attributes,stock\n"
        'CSV-1,Desk Lamp,,home,2999,usd,"{""watts"": 9, ""colors"": [""black"", ""white""]}",12\n'
        'CSV-2,"Lamp, large","Two lines\nof text",home,4999,,,\n',
        encoding="utf-8",
    )

    report = await import_rows(database, read_rows(path), progress=False)

    assert (report.created, report.rejected) == (2, [])
    async with database.sessionmaker() as session:
        rows = {
            p.sku: (p, stock) for p, stock in await repository.get_many(session, ["CSV-1", "CSV-2"])
        }
    lamp, stock = rows["CSV-1"]
    assert lamp.attributes == {"watts": 9, "colors": ["black", "white"]}
    assert (lamp.description, lamp.price_cents, stock) == ("", 2999, 12)
    large, stock = rows["CSV-2"]
    assert (large.name, large.currency, large.attributes, stock) == ("Lamp, large", "usd", {}, 0)


@pytest.mark.asyncio
async def test_invalid_rows_are_reported_by_line_and_skipped(
    database: Database, tmp_path: Path
) -> None:
    path = write_jsonl(
        tmp_path / "p.jsonl",
        [
            product("OK-1"),
            product("OK-2", price_cents=-5),  # line 2
            "",  # blank lines are skipped but still counted
            product("bad sku!"),  # line 4
            {k: v for k, v in product("OK-3").items() if k != "name"},  # line 5
            product("OK-4", colour="red"),  # line 6
            product("OK-5", attributes={f"k{i}": i for i in range(51)}),  # line 7
            product("OK-6"),
        ],
    )

    report = await import_rows(database, read_rows(path), progress=False)

    assert (report.created, report.rows) == (2, 7)
    problems = dict(report.rejected)
    assert sorted(problems) == [2, 4, 5, 6, 7]
    assert problems[2].startswith("price_cents: ") and "-5" in problems[2]
    assert problems[4].startswith("sku: ") and "bad sku!" in problems[4]
    assert problems[5] == "name: Field required"
    assert problems[6] == "colour: Extra inputs are not permitted"
    assert problems[7] == "attributes: at most 50 attributes"
    assert await product_count(database) == 2


@pytest.mark.asyncio
async def test_csv_bad_attributes_json_rejects_only_that_row(
    database: Database, tmp_path: Path
) -> None:
    path = tmp_path / "p.csv"
    path.write_text(
        "sku,name,category,price_cents,attributes\n"
        "A-1,One,misc,100,{not json}\n"
        'A-2,Two,misc,200,"[1, 2]"\n'
        "A-3,Three,misc,abc,\n"
        "A-4,Four,misc,400,\n",
        encoding="utf-8",
    )

    report = await import_rows(database, read_rows(path), progress=False)

    assert report.created == 1
    problems = dict(report.rejected)
    assert problems[2].startswith("attributes: not valid JSON")
    assert problems[3].startswith("attributes: Input should be a valid dictionary")
    assert problems[4].startswith("price_cents: ") and "'abc'" in problems[4]


@pytest.mark.asyncio
async def test_a_row_the_database_refuses_is_rejected_alone(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_upsert = repository.upsert

    async def picky_upsert(session: Any, items: Any) -> tuple[int, int]:
        items = list(items)
        if any(item.sku == "BAD-1" for item in items):
            raise sa.exc.IntegrityError("INSERT …", {}, Exception("value out of range"))
        return await real_upsert(session, items)

    monkeypatch.setattr(repository, "upsert", picky_upsert)
    rows = [product("OK-1"), product("BAD-1"), product("OK-2")]
    path = write_jsonl(tmp_path / "p.jsonl", rows)

    report = await import_rows(database, read_rows(path), progress=False)

    assert report.created == 2
    assert report.rejected == [(2, "database refused the row: value out of range")]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("p.jsonl", '{"sku": "A-1"}\n{"sku": "A-2", oops}\n', "line 2: not valid JSON"),
        ("p.jsonl", '{"sku": "A-1"}\n\n[1, 2]\n', "line 3: expected a JSON object, got an array"),
        ("p.jsonl", '{"sku": "A-1", "price_cents": NaN}\n', "line 1: not valid JSON (NaN"),
        ("p.csv", "sku;name;category\nA;B;c\n", "line 1: bad header: unknown column(s)"),
        ("p.csv", "sku,name,category,price_cents\nA-1,B,c,1,extra\n", "line 2: 5 fields"),
        ("p.csv", 'sku,name,category,price_cents\nA-1,"B"x,c,1\n', "line 2: not valid CSV"),
        ("p.csv", "", "line 1: expected a header row"),
        ("p.jsonl.gz", "not gzip at all", "corrupt or truncated gzip"),
        ("p.txt", "whatever", "unsupported file type"),
    ],
)
def test_malformed_files_raise_with_the_line(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ImportFileError) as caught:
        list(read_rows(path))
    assert message in str(caught.value)


def test_non_utf8_file_is_malformed(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_bytes(b"sku,name,category,price_cents\nA-1,caf\xe9,c,1\n")
    with pytest.raises(ImportFileError, match="not UTF-8"):
        list(read_rows(path))


@pytest.mark.asyncio
async def test_load_sample_if_empty_loads_once(database: Database) -> None:
    first = await load_sample_if_empty(database)
    assert 2_500 <= first <= 3_500
    assert await product_count(database) == first
    assert await load_sample_if_empty(database) == 0


def test_sample_products_are_valid_and_varied() -> None:
    products = sample_products()
    assert 2_500 <= len(products) <= 3_500
    assert len({p.sku for p in products}) == len(products)
    assert len({p.category for p in products}) >= 10
    assert all(ProductIn.model_validate(p.model_dump()) == p for p in products)
    assert all(p.price_cents > 0 and p.currency == "usd" and p.attributes for p in products)
    assert any(p.stock == 0 for p in products) and any(p.stock for p in products)
    assert sample_products() == products  # deterministic


def test_packaged_sample_file_is_current() -> None:
    assert SAMPLE_CATALOG.stat().st_size < 1_000_000
    with gzip.open(SAMPLE_CATALOG, "rt", encoding="utf-8") as stream:
        assert stream.read() == to_jsonl(sample_products())


@pytest.mark.asyncio
async def test_cli_exit_codes(
    database: Database, tmp_path: Path, cli_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    def run(*argv: str) -> int:
        return importer.main(list(argv))

    good = write_jsonl(tmp_path / "good.jsonl", [product("G-1"), product("G-2")])
    mixed = write_jsonl(
        tmp_path / "mixed.jsonl",
        [product("M-1")] + [product(f"M-{i}", price_cents=-1) for i in range(25)],
    )
    malformed = write_jsonl(tmp_path / "bad.jsonl", [product("X-1"), "{oops"])

    assert await asyncio.to_thread(run, "--dry-run", str(mixed)) == 1
    assert "dry run: 1 of 26 rows valid" in capsys.readouterr().out
    assert await product_count(database) == 0

    assert await asyncio.to_thread(run, str(good)) == 0
    assert "created 2, updated 0" in capsys.readouterr().out

    assert await asyncio.to_thread(run, str(mixed), "--batch-size", "10") == 1
    out = capsys.readouterr().out
    assert "rejected 25 row(s)" in out and "line 2: price_cents:" in out and "and 5 more" in out

    assert await asyncio.to_thread(run, str(malformed)) == 2
    assert "line 2: not valid JSON" in capsys.readouterr().err
    assert await asyncio.to_thread(run, str(tmp_path / "missing.jsonl")) == 2
    assert "no such file" in capsys.readouterr().err
    assert await product_count(database) == 3  # the malformed file wrote nothing
