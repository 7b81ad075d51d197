"""The newcomer's default: a SQLite file and the in-process Redis, with the sample catalog.

The same gate script runs here as on Redis and Upstash (fakeredis executes the Lua).
"""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from httpx import ASGITransport, AsyncClient

from app.core import config as config_module
from app.core.config import DEFAULT_SQLITE_URL, Settings, default_database_url
from app.core.embedded import ALEMBIC_INI, migrate_embedded_database
from app.main import create_app
from tests.conftest import ADMIN_KEY, ROOT

HEAD = ScriptDirectory.from_config(Config(str(ALEMBIC_INI))).get_current_head()
SERVICE_VARIABLES = {
    "DATABASE_URL",
    "REDIS_URL",
    "UPSTASH_REDIS_REST_URL",
    "UPSTASH_REDIS_REST_TOKEN",
    "VERCEL",
    "VERCEL_ENV",
}


async def test_embedded_default_end_to_end(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/agentmall.db"
    config = Config(os.path.join(ROOT, "alembic.ini"))
    config.attributes["database_url"] = url
    config.attributes["configure_logger"] = False
    await asyncio.to_thread(command.upgrade, config, "head")
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        DATABASE_URL=url,
        ADMIN_API_KEY=ADMIN_KEY,
        REDIS_KEY_PREFIX=f"emb:{tmp_path.name}:",
        LOAD_SAMPLE_CATALOG=True,
    )
    assert settings.redis_backend == "embedded"
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        AsyncClient(transport=ASGITransport(app), base_url="http://local") as client,
    ):
        signup = await client.post("/v1/signup", json={"email": "new@example.com"})
        assert signup.status_code == 201
        headers = {"X-API-Key": signup.json()["api_key"]}
        page = await client.get("/v1/products", params={"limit": 100}, headers=headers)
        assert page.status_code == 200 and len(page.json()["data"]) == 100
        assert page.headers["x-quota-remaining"] == "999"
        sku = page.json()["data"][0]["sku"]
        detail = await client.get(f"/v1/products/{sku}", headers=headers)
        assert detail.status_code == 200 and "stock" in detail.json()
        await client.put(
            "/v1/admin/plans/free",
            json={"included_calls": 3},
            headers={"X-API-Key": ADMIN_KEY},
        )
        statuses = [
            (await client.get("/v1/products", headers=headers)).status_code for _ in range(2)
        ]
        assert statuses == [200, 429]
        assert (await client.get("/v1/health/ready")).json()["redis"] == "embedded"


def embedded_settings(url: str, prefix: str) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None, DATABASE_URL=url, REDIS_KEY_PREFIX=prefix, LOAD_SAMPLE_CATALOG=True
    )


def revision(path: Path) -> str | None:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    assert len(rows) == 1
    return str(rows[0][0])


async def signup_and_list(client: AsyncClient, email: str) -> list[dict[str, object]]:
    signup = await client.post("/v1/signup", json={"email": email})
    assert signup.status_code == 201, signup.text
    headers = {"X-API-Key": signup.json()["api_key"]}
    page = await client.get("/v1/products", params={"limit": 100}, headers=headers)
    assert page.status_code == 200, page.text
    data: list[dict[str, object]] = page.json()["data"]
    return data


async def test_fresh_directory_migrates_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No `alembic upgrade` beforehand: the lifespan migrates the SQLite file, then loads it."""
    monkeypatch.chdir(tmp_path)
    app = create_app(embedded_settings(f"sqlite+aiosqlite:///{tmp_path}/x.db", "fresh:"))
    async with (
        app.router.lifespan_context(app),
        AsyncClient(transport=ASGITransport(app), base_url="http://local") as client,
    ):
        assert len(await signup_and_list(client, "fresh@example.com")) == 100
    assert revision(tmp_path / "x.db") == HEAD


async def test_starting_twice_on_the_same_file(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/twice.db"
    for attempt in range(2):
        app = create_app(embedded_settings(url, f"twice{attempt}:"))
        async with (
            app.router.lifespan_context(app),
            AsyncClient(transport=ASGITransport(app), base_url="http://local") as client,
        ):
            assert len(await signup_and_list(client, f"twice{attempt}@example.com")) == 100
    with sqlite3.connect(tmp_path / "twice.db") as conn:
        assert conn.execute("SELECT count(*) FROM plans").fetchone() == (3,)
        assert conn.execute("SELECT count(*) FROM accounts").fetchone() == (2,)
    assert revision(tmp_path / "twice.db") == HEAD


async def test_concurrent_starts_take_turns(tmp_path: Path) -> None:
    """Several processes (and tasks) migrating one fresh file at once: all succeed, once."""
    url = f"sqlite+aiosqlite:///{tmp_path}/race.db"
    code = (
        "import asyncio, sys; from app.core.config import Settings;"
        "from app.core.embedded import migrate_embedded_database as m;"
        "asyncio.run(m(Settings(_env_file=None, DATABASE_URL=sys.argv[1])))"
    )
    env = {**os.environ, "PYTHONPATH": ROOT}
    processes = [
        subprocess.Popen([sys.executable, "-c", code, url], env=env, cwd=tmp_path) for _ in range(3)
    ]
    settings = embedded_settings(url, "race:")
    assert await asyncio.gather(*(migrate_embedded_database(settings) for _ in range(2))) == [
        True,
        True,
    ]
    assert [p.wait(timeout=60) for p in processes] == [0, 0, 0]
    assert revision(tmp_path / "race.db") == HEAD


async def test_postgres_is_never_migrated_at_start_up() -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, DATABASE_URL="postgresql://u:p@127.0.0.1:9/nowhere"
    )
    assert await migrate_embedded_database(settings) is False  # would fail if it connected


def test_default_database_is_in_a_writable_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fallback = "sqlite+aiosqlite:///" + (Path(tempfile.gettempdir()) / "agentmall.db").as_posix()
    monkeypatch.chdir(tmp_path)
    assert default_database_url() == DEFAULT_SQLITE_URL
    assert Settings(_env_file=None).DATABASE_URL == DEFAULT_SQLITE_URL  # type: ignore[call-arg]

    readonly = tmp_path / "readonly"
    readonly.mkdir()
    readonly.chmod(0o555)
    monkeypatch.chdir(readonly)
    try:
        if not os.access(".", os.W_OK):  # root ignores the mode bits: checked below instead
            assert default_database_url() == fallback
    finally:
        readonly.chmod(0o755)

    # A read-only filesystem (Vercel's /var/task): the access check is what decides.
    monkeypatch.setattr(config_module.os, "access", lambda *_: False)
    assert default_database_url() == fallback
    settings = Settings(_env_file=None, VERCEL="1", VERCEL_ENV="preview")  # type: ignore[call-arg]
    assert settings.DATABASE_URL == fallback and settings.is_sqlite
    with pytest.raises(ValueError, match="DATABASE_URL must point at PostgreSQL"):
        Settings(  # type: ignore[call-arg]
            _env_file=None, VERCEL="1", VERCEL_ENV="production", CRON_SECRET="c" * 20
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_uvicorn_serves_from_a_fresh_directory(tmp_path: Path) -> None:
    """The real launcher, no settings, a directory with nothing in it: up and serving products."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in SERVICE_VARIABLES}
    env["PYTHONPATH"] = ROOT
    command_line = [sys.executable, "-m", "uvicorn", "api.index:app", "--port", str(port)]
    base = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    with open(tmp_path / "server.log", "wb") as log:
        process = subprocess.Popen(
            command_line, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        with httpx.Client(base_url=base, timeout=5) as client:
            while True:
                assert process.poll() is None, (tmp_path / "server.log").read_text()
                assert time.monotonic() - started < 60, "no /v1/health answer within 60 s"
                try:
                    if client.get("/v1/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
            signup = client.post("/v1/signup", json={"email": "process@example.com"})
            assert signup.status_code == 201, signup.text
            headers = {"X-API-Key": signup.json()["api_key"]}
            page = client.get("/v1/products", params={"limit": 1}, headers=headers)
            assert page.status_code == 200, page.text
            sku = page.json()["data"][0]["sku"]
            product = client.get(f"/v1/products/{sku}", headers=headers)
            assert product.status_code == 200 and product.json()["sku"] == sku
        print(f"first product read {time.monotonic() - started:.2f}s after launch")
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert (tmp_path / "agentmall.db").exists()


def test_search_facts_follow_products_written_by_any_tool(tmp_path: Path) -> None:
    """Migration 0008 fills the search facts and the attribute values of products already
    there, and its triggers keep them in step with any writer (here plain SQL: a price-only
    UPDATE does not touch the FTS index, only the facts); downgrading drops them again."""
    path = tmp_path / "facts.db"
    config = Config(os.path.join(ROOT, "alembic.ini"))
    config.attributes["database_url"] = f"sqlite+aiosqlite:///{path}"
    config.attributes["configure_logger"] = False
    command.upgrade(config, "0007")
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO products (sku, name, description, category, price_cents, currency,"
            " attributes, created_at, updated_at) VALUES ('F-1', 'Oak Desk', 'A desk.', 'office',"
            ' 1000, \'usd\', \'{"brand": "Acme", "size": 10, "tags": [1]}\','
            " '2026-01-02 03:04:05', '2026-01-02 03:04:05')"
        )
    command.upgrade(config, "head")
    facts = "SELECT sku, price_cents, category, brand, name_length, created_at"
    facts += " FROM product_search_ids"
    values = "SELECT name, value, sku FROM product_attribute_values ORDER BY name"
    with sqlite3.connect(path) as db:
        assert db.execute(facts).fetchall() == [
            ("F-1", 1000, "office", "Acme", 8, "2026-01-02 03:04:05")
        ]
        assert db.execute(values).fetchall() == [("brand", "Acme", "F-1"), ("size", 10, "F-1")]
        db.execute("UPDATE products SET price_cents = 1500 WHERE sku = 'F-1'")
        assert db.execute(facts).fetchall()[0][1] == 1500
        db.execute(
            "UPDATE products SET name = 'Oak Standing Desk', category = 'desks',"
            " attributes = '{\"brand\": \"Birch\"}' WHERE sku = 'F-1'"
        )
        assert db.execute(facts).fetchall() == [
            ("F-1", 1500, "desks", "Birch", 17, "2026-01-02 03:04:05")
        ]
        assert db.execute(values).fetchall() == [("brand", "Birch", "F-1")]
        match = "SELECT m.sku FROM products_fts"
        match += " JOIN product_search_ids AS m ON m.id = products_fts.rowid"
        assert db.execute(match + " WHERE products_fts MATCH 'standing'").fetchall() == [("F-1",)]
        db.execute("DELETE FROM products WHERE sku = 'F-1'")
        assert db.execute(facts).fetchall() == []
        assert db.execute(values).fetchall() == []
        # the word list's trigram index follows its inserts and deletes
        db.execute("INSERT INTO search_words (word, ndoc) VALUES ('walnut', 1), ('walrus', 1)")
        db.execute("DELETE FROM search_words WHERE word = 'walnut'")
        trigrams = "SELECT word FROM search_words_trgm WHERE search_words_trgm MATCH '\" wa\"'"
        assert db.execute(trigrams).fetchall() == [("  walrus ",)]
    command.downgrade(config, "0007")
    with sqlite3.connect(path) as db:
        columns = [row[1] for row in db.execute("PRAGMA table_info(product_search_ids)")]
        assert columns == ["id", "sku"]
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        assert not tables & {"product_attribute_values", "search_words_trgm"}
