"""List cursors: keyed with a server secret, and a MAC is not enough — the SKU must be valid too."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from httpx import ASGITransport, AsyncClient
from pydantic import ValidationError

from app.catalog.cursor import CursorCodec, Position
from app.catalog.search import repository
from app.catalog.search.common import Filters, Spec
from app.catalog.search.service import binding_of
from app.core.config import Settings
from app.core.errors import InvalidCursor
from app.core.sealed import seal
from app.main import create_app
from tests.conftest import make_settings
from tests.support.factories import key_headers, make_account, make_products
from tests.support.upstash_bridge import UpstashBridge

OLD_PUBLIC_KEY = b"agentmall/catalog-cursor/v1"  # the constant MAC key before CURSOR_SECRET
OTHER_SECRET = "another-deployment-cursor-secret"

# A correct MAC around a value that is not a SKU: the path parameter's rules reject every one.
NOT_SKUS: list[Any] = [
    "\x00",
    "SKU-1\x00",
    "x" * 10_000,
    "A" * 65,
    "A" * 150,  # fits in a 256-character cursor, but a SKU has at most 64 characters
    "SKU-1\n",
    "",
    "-leading-dash",
    "with space",
    "ünïcode",
    123,
    None,
    True,
    ["SKU-1"],
    {"a": "SKU-1"},
]


def short_id(value: Any) -> str:
    """A readable test id for a (possibly huge) value."""
    text = repr(value)
    return text if len(text) <= 24 else f"{text[:12]}...({len(text)} chars)"


def build(**values: Any) -> Settings:
    """Settings from `values` only (no environment file)."""
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


# --- the codec on its own -----------------------------------------------------------------------

BROWSE = binding_of("", Filters(), "sku")  # GET /v1/products without q or filters


def sku_cursor(codec: CursorCodec, value: Any, binding: str = BROWSE) -> str:
    return codec.encode(Position((value,)), binding)


def test_round_trip_and_binding_to_the_search() -> None:
    codec = CursorCodec(b"k" * 32)
    cafe = binding_of("café", Filters(), "relevance")
    cursor = codec.encode(Position((0.25, "SKU-00019"), mode=1, total=42, capped=True), cafe)
    assert codec.decode(cursor, cafe, "relevance") == Position(
        (0.25, "SKU-00019"), mode=1, total=42, capped=True
    )
    for other in (
        binding_of("cafe", Filters(), "relevance"),
        binding_of("café", Filters(categories=("coffee",)), "relevance"),
        binding_of("café", Filters(), "price_asc"),
    ):
        with pytest.raises(InvalidCursor):
            codec.decode(cursor, other, "relevance")


def test_a_cursor_is_only_valid_under_its_own_key() -> None:
    codec = CursorCodec(build(ADMIN_API_KEY="a" * 32).cursor_key)
    for key in (OLD_PUBLIC_KEY, build(ADMIN_API_KEY="b" * 32).cursor_key):
        with pytest.raises(InvalidCursor):
            codec.decode(sku_cursor(CursorCodec(key), "SKU-1"), BROWSE, "sku")


@pytest.mark.parametrize("value", NOT_SKUS, ids=short_id)
def test_a_correct_mac_around_a_bad_sku_is_invalid(value: Any) -> None:
    codec = CursorCodec(b"k" * 32)
    with pytest.raises(InvalidCursor):
        codec.decode(sku_cursor(codec, value), BROWSE, "sku")


@pytest.mark.parametrize(
    ("sort", "key"),
    [
        ("relevance", [float("nan"), "SKU-1"]),
        ("relevance", [float("inf"), "SKU-1"]),
        ("relevance", ["0.5", "SKU-1"]),
        ("relevance", [True, "SKU-1"]),
        ("relevance", [0.5]),
        ("relevance", [0.5, "SKU-1", "extra"]),
        ("price_asc", [-1, "SKU-1"]),
        ("price_asc", [1.5, "SKU-1"]),
        ("price_desc", [10**12, "SKU-1"]),
        ("newest", ["yesterday", "SKU-1"]),
        ("newest", [12345, "SKU-1"]),
        ("newest", ["2026-12-01T00:00:00+00:00", "bad sku"]),
        ("sku", "SKU-1"),
    ],
)
def test_a_correct_mac_around_a_bad_sort_key_is_invalid(sort: str, key: Any) -> None:
    codec = CursorCodec(b"k" * 32)
    binding = binding_of("x", Filters(), sort)
    cursor = seal(b"k" * 32, {"k": key, "f": binding, "m": 0, "t": 0})
    with pytest.raises(InvalidCursor):
        codec.decode(cursor, binding, sort)


@pytest.mark.parametrize(("mode", "total"), [(8, 0), (-1, 0), ("1", 0), (0, -5), (0, 2.5)])
def test_a_correct_mac_around_bad_state_is_invalid(mode: Any, total: Any) -> None:
    codec = CursorCodec(b"k" * 32)
    cursor = seal(b"k" * 32, {"k": ["SKU-1"], "f": BROWSE, "m": mode, "t": total})
    with pytest.raises(InvalidCursor):
        codec.decode(cursor, BROWSE, "sku")


# --- the key, from settings ---------------------------------------------------------------------


def test_cursor_key_comes_from_the_dedicated_secret_first() -> None:
    dedicated = build(CURSOR_SECRET="c" * 32, ADMIN_API_KEY="a" * 32).cursor_key
    assert dedicated == build(CURSOR_SECRET="c" * 32).cursor_key
    assert dedicated != build(ADMIN_API_KEY="a" * 32).cursor_key


def test_cursor_key_is_derived_not_the_secret_itself() -> None:
    admin = build(ADMIN_API_KEY="a" * 32)
    assert admin.cursor_key == build(ADMIN_API_KEY="a" * 32).cursor_key  # same on every instance
    assert admin.cursor_key != b"a" * 32 and len(admin.cursor_key) == 32
    cron = build(CRON_SECRET="c" * 32).cursor_key
    upstash = build(
        UPSTASH_REDIS_REST_URL="https://x.upstash.io", UPSTASH_REDIS_REST_TOKEN="u" * 40
    ).cursor_key
    assert len({admin.cursor_key, cron, upstash}) == 3


def test_without_any_secret_the_key_is_random_per_process() -> None:
    key = build().cursor_key
    assert key == build().cursor_key and len(key) == 32
    assert key not in {OLD_PUBLIC_KEY, build(ADMIN_API_KEY="a" * 32).cursor_key}


@pytest.mark.parametrize("value", ["short", "changeme", "Secret"])
def test_a_weak_cursor_secret_fails_naming_it(value: str) -> None:
    with pytest.raises(ValidationError) as caught:
        build(CURSOR_SECRET=value)
    assert "CURSOR_SECRET" in str(caught.value)


# --- through the API ----------------------------------------------------------------------------


@pytest.fixture
async def key(client: AsyncClient) -> str:
    _, api_key = await make_account(client, plan="pro")
    return api_key


@pytest.fixture
def searches(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    """Records the position of every catalog page that reaches the repository (SQL)."""
    seen: list[str | None] = []
    real = repository.page

    async def recording(session: Any, spec: Spec) -> Any:
        seen.append(spec.after[-1] if spec.after else None)
        return await real(session, spec)

    monkeypatch.setattr(repository, "page", recording)
    return seen


async def list_products(client: AsyncClient, key: str, **params: Any) -> Any:
    """GET /v1/products with `params`."""
    return await client.get("/v1/products", params=params, headers=key_headers(key))


def assert_invalid_cursor(response: Any) -> None:
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_cursor"


async def test_a_cursor_under_the_old_public_key_is_400(
    client: AsyncClient, key: str, searches: list[str | None]
) -> None:
    await make_products(client, 3)
    forged = sku_cursor(CursorCodec(OLD_PUBLIC_KEY), "SKU-00000")
    assert_invalid_cursor(await list_products(client, key, cursor=forged))
    assert searches == []


@pytest.mark.parametrize("value", NOT_SKUS, ids=short_id)
async def test_a_correctly_maced_bad_sku_is_400_and_never_reaches_sql(
    client: AsyncClient, key: str, settings: Settings, searches: list[str | None], value: Any
) -> None:
    cursor = sku_cursor(CursorCodec(settings.cursor_key), value)
    assert_invalid_cursor(await list_products(client, key, cursor=cursor))
    assert searches == []
    good = sku_cursor(CursorCodec(settings.cursor_key), "SKU-00000")
    assert (await list_products(client, key, cursor=good)).status_code == 200
    assert searches == ["SKU-00000"]  # the recorder sees what does reach SQL


async def test_an_overlong_cursor_is_400(client: AsyncClient, key: str) -> None:
    assert_invalid_cursor(await list_products(client, key, cursor="A" * 600))


@pytest.fixture
async def other_client(
    backend: str, redis_prefix: str, bridge: UpstashBridge, app: Any
) -> AsyncIterator[AsyncClient]:
    """An app on the same database and Redis, but with its own CURSOR_SECRET."""
    settings = make_settings(backend, redis_prefix, bridge.url, CURSOR_SECRET=OTHER_SECRET)
    other = create_app(settings)
    transport = ASGITransport(app=other, client=("203.0.113.8", 50000))
    async with AsyncClient(transport=transport, base_url="http://test") as c:
        yield c
    await other.state.services.close()


async def test_a_cursor_from_an_app_with_another_secret_is_400(
    client: AsyncClient, other_client: AsyncClient, key: str
) -> None:
    await make_products(client, 3)
    theirs = (await list_products(other_client, key, limit=1)).json()["next_cursor"]
    ours = (await list_products(client, key, limit=1)).json()["next_cursor"]
    assert theirs != ours
    assert (await list_products(other_client, key, cursor=theirs)).status_code == 200
    assert_invalid_cursor(await list_products(client, key, cursor=theirs))
    assert_invalid_cursor(await list_products(other_client, key, cursor=ours))


async def test_filtered_pagination_walks_every_match_once(client: AsyncClient, key: str) -> None:
    skus = await make_products(client, 25, prefix="CUR")
    await make_products(client, 5, prefix="OTHER")
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 7, "q": "CUR"} | ({"cursor": cursor} if cursor else {})
        page = (await list_products(client, key, **params)).json()
        seen += [p["sku"] for p in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == skus
