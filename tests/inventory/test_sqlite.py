"""The embedded default (SQLite, one writer at a time): the migration, the sync with its
idempotency key, and the feed in id order, including the sample catalog's product changes."""

from __future__ import annotations

from pathlib import Path

from httpx import ASGITransport, AsyncClient

from app.core.config import Settings
from app.main import create_app
from tests.conftest import ADMIN_KEY
from tests.inventory.helpers import FEED, SYNC

ADMIN = {"X-API-Key": ADMIN_KEY}


async def test_sync_and_feed_on_sqlite(tmp_path: Path) -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/inv.db",
        ADMIN_API_KEY=ADMIN_KEY,
        REDIS_KEY_PREFIX=f"inv:{tmp_path.name}:",
        LOAD_SAMPLE_CATALOG=False,
    )
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        AsyncClient(transport=ASGITransport(app), base_url="http://local") as client,
    ):
        products = [
            {"sku": f"S-{i}", "name": "Thing", "category": "things", "price_cents": 100}
            for i in range(3)
        ]
        assert (
            await client.put("/v1/admin/products", json={"products": products}, headers=ADMIN)
        ).status_code == 200
        account = (await client.post("/v1/signup", json={"email": "a@example.com"})).json()
        await client.put(
            f"/v1/admin/accounts/{account['account_id']}/plan", json={"plan": "pro"}, headers=ADMIN
        )
        headers = {"X-API-Key": account["api_key"]}
        body = {"items": [{"sku": "S-1", "stock": 4, "price_cents": 150}, {"sku": "X", "stock": 1}]}
        first = await client.post(SYNC, json=body, headers=ADMIN | {"Idempotency-Key": "one"})
        again = await client.post(SYNC, json=body, headers=ADMIN | {"Idempotency-Key": "one"})
        assert (
            first.json()
            == again.json()
            == {"updated": ["S-1"], "unchanged": [], "not_found": ["X"]}
        )
        assert again.headers["idempotent-replayed"] == "true"
        page = (await client.get(FEED, params={"limit": 3}, headers=headers)).json()
        assert [c["sku"] for c in page["data"]] == ["S-0", "S-1", "S-2"] and page["has_more"]
        rest = await client.get(FEED, params={"cursor": page["next_cursor"]}, headers=headers)
        assert [
            (c["sku"], c["stock"], c["price_cents"], c["kind"]) for c in rest.json()["data"]
        ] == [("S-1", 4, 150, "inventory")]
