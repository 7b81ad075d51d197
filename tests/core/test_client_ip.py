"""The client address behind proxies: X-Forwarded-For only as far as our own proxies wrote it."""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from pydantic import ValidationError
from starlette.requests import Request

from app.core.client_ip import ClientIP, limit_bucket, parse_ip, parse_networks
from app.core.config import Settings
from app.main import create_app
from tests.conftest import make_settings
from tests.support.upstash_bridge import UpstashBridge

PEER = "10.0.0.9"  # a load balancer of ours
BEHIND_PROXIES = ClientIP(on_vercel=False, trusted=parse_networks("10.0.0.0/8, 127.0.0.1"))
NO_PROXIES = ClientIP(on_vercel=False)


def request(peer: str | None, *headers: tuple[str, str]) -> Request:
    scope: dict[str, Any] = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers],
        "client": (peer, 443) if peer else None,
    }
    return Request(scope)


def xff(value: str) -> tuple[str, str]:
    return ("X-Forwarded-For", value)


def test_without_trusted_proxies_the_headers_are_ignored() -> None:
    spoofed = request("198.51.100.4", xff("1.1.1.1"), ("X-Real-IP", "2.2.2.2"))
    assert NO_PROXIES.of(spoofed) == "198.51.100.4"


def test_the_right_most_untrusted_hop_is_the_client() -> None:
    assert BEHIND_PROXIES.of(request(PEER, xff("198.51.100.4"))) == "198.51.100.4"
    # a client that sends its own X-Forwarded-For only adds entries on the left
    spoofed = request(PEER, xff("6.6.6.6, 7.7.7.7, 198.51.100.4, 10.0.0.2, 127.0.0.1"))
    assert BEHIND_PROXIES.of(spoofed) == "198.51.100.4"


def test_an_untrusted_peer_is_the_client_whatever_it_forwards() -> None:
    assert BEHIND_PROXIES.of(request("198.51.100.4", xff("6.6.6.6"))) == "198.51.100.4"


def test_every_hop_trusted_means_the_left_most_is_the_client() -> None:
    assert BEHIND_PROXIES.of(request(PEER, xff("10.1.1.1, 10.2.2.2"))) == "10.1.1.1"


def test_no_header_or_an_empty_one_means_the_peer() -> None:
    assert BEHIND_PROXIES.of(request(PEER)) == PEER
    assert BEHIND_PROXIES.of(request(PEER, xff(""))) == PEER
    assert BEHIND_PROXIES.of(request(None, xff("1.2.3.4"))) == "unknown"


@pytest.mark.parametrize(
    "header",
    [
        "garbage",
        "198.51.100.4, not-an-ip",
        "198.51.100.4,,",
        "999.1.1.1",
        "[2001:db8::1",
        "\x00\xff",
        "1.2.3.4:x:y",
        ",",
    ],
)
def test_garbage_where_a_proxy_wrote_falls_back_to_the_peer(header: str) -> None:
    assert BEHIND_PROXIES.of(request(PEER, xff(header))) == PEER


def test_garbage_left_of_the_client_is_never_read() -> None:
    spoofed = request(PEER, xff("garbage, \x00, 198.51.100.4, 10.0.0.3"))
    assert BEHIND_PROXIES.of(spoofed) == "198.51.100.4"


def test_ports_brackets_mapped_addresses_and_several_header_lines() -> None:
    assert BEHIND_PROXIES.of(request(PEER, xff("198.51.100.4:5123"))) == "198.51.100.4"
    assert BEHIND_PROXIES.of(request(PEER, xff("[2001:db8::7]:443"))) == "2001:db8::7"
    assert BEHIND_PROXIES.of(request(PEER, xff("2001:DB8:0::7"))) == "2001:db8::7"
    assert BEHIND_PROXIES.of(request(PEER, xff("::ffff:198.51.100.4"))) == "198.51.100.4"
    lines = request(PEER, xff("6.6.6.6"), xff("198.51.100.4, 10.0.0.2"))
    assert BEHIND_PROXIES.of(lines) == "198.51.100.4"


def test_a_huge_or_random_header_never_crashes_and_stays_cheap() -> None:
    huge = ", ".join(["6.6.6.6"] * 100_000) + ", 198.51.100.4"
    started = time.perf_counter()
    assert BEHIND_PROXIES.of(request(PEER, xff(huge))) == "198.51.100.4"
    assert time.perf_counter() - started < 0.5
    rng = random.Random(7)
    alphabet = "0123456789abcdef:.,[] fg\t%-"
    for _ in range(2000):
        value = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        found = BEHIND_PROXIES.of(request(PEER, xff(value)))
        assert found == PEER or parse_ip(found) is not None


def test_deprecated_trust_proxy_headers_trusts_exactly_one_hop() -> None:
    one_hop = ClientIP(on_vercel=False, trust_one_hop=True)
    spoofed = request("192.0.2.1", xff("6.6.6.6, 198.51.100.4"))
    assert one_hop.of(spoofed) == "198.51.100.4"
    assert one_hop.of(request("192.0.2.1", xff("6.6.6.6, junk"))) == "192.0.2.1"
    # TRUSTED_PROXIES, when set, wins over the alias
    both = ClientIP(on_vercel=False, trusted=parse_networks(PEER), trust_one_hop=True)
    assert both.of(request("192.0.2.1", xff("198.51.100.4"))) == "192.0.2.1"


def test_on_vercel_the_platform_headers_are_used() -> None:
    vercel = ClientIP(on_vercel=True)
    headers = (
        xff("198.51.100.3, 10.0.0.1"),
        ("X-Real-IP", "198.51.100.2"),
        ("X-Vercel-Forwarded-For", "198.51.100.1"),
    )
    assert vercel.of(request(PEER, *headers)) == "198.51.100.1"
    assert vercel.of(request(PEER, *headers[:2])) == "198.51.100.2"
    assert vercel.of(request(PEER, headers[0])) == "198.51.100.3"
    assert vercel.of(request(PEER, ("X-Real-IP", "garbage"))) == PEER
    assert vercel.of(request(PEER)) == PEER


def test_ipv6_is_limited_per_64() -> None:
    assert limit_bucket("2001:db8:1:2:aaaa::1") == limit_bucket("2001:db8:1:2:ffff::9")
    assert limit_bucket("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert limit_bucket("2001:db8:1:3::1") != limit_bucket("2001:db8:1:2::1")
    assert limit_bucket("198.51.100.4") == "198.51.100.4"
    assert limit_bucket("unknown") == "unknown"


def test_trusted_proxies_setting_is_validated_and_read() -> None:
    settings = Settings(_env_file=None, TRUSTED_PROXIES=" 10.0.0.0/8, 127.0.0.1 ,")  # type: ignore[call-arg]
    assert settings.TRUSTED_PROXIES == "10.0.0.0/8,127.0.0.1"
    client_ip = ClientIP.from_settings(settings)
    assert client_ip.of(request("127.0.0.1", xff("198.51.100.4"))) == "198.51.100.4"
    for bad in ["10.0.0.0/33", "localhost", "10.0.0.1/8/2"]:
        with pytest.raises(ValidationError) as caught:
            Settings(_env_file=None, TRUSTED_PROXIES=bad)  # type: ignore[call-arg]
        assert "TRUSTED_PROXIES" in str(caught.value)


# -- through the API: the signup limit cannot be dodged by rotating a spoofed header -------------

SIGNUP_LIMIT = 5  # SIGNUPS_PER_IP_PER_HOUR's default


@pytest.fixture
async def proxied_app(
    backend: str, redis_prefix: str, bridge: UpstashBridge, raw_redis: Any, clean_database: None
) -> AsyncIterator[FastAPI]:
    """The app behind one proxy of ours: the test client's address (203.0.113.7)."""
    settings = make_settings(backend, redis_prefix, bridge.url, TRUSTED_PROXIES="203.0.113.7")
    app = create_app(settings)
    yield app
    await app.state.services.close()


async def _signups(app: FastAPI, forwarded: list[str]) -> list[int]:
    transport = ASGITransport(app=app, client=("203.0.113.7", 50000))
    async with AsyncClient(transport=transport, base_url="http://test") as client:
        return [
            (
                await client.post(
                    "/v1/signup",
                    json={"email": f"u{i}-{time.monotonic_ns()}@example.com"},
                    headers={"X-Forwarded-For": value},
                )
            ).status_code
            for i, value in enumerate(forwarded)
        ]


async def test_rotating_a_spoofed_forwarded_for_cannot_exceed_the_signup_limit(
    proxied_app: FastAPI,
) -> None:
    spoofed = [f"{i}.{i}.{i}.{i}, 198.51.100.4" for i in range(1, SIGNUP_LIMIT + 4)]
    statuses = await _signups(proxied_app, spoofed)
    assert statuses == [201] * SIGNUP_LIMIT + [429] * 3
    # another real client behind the same proxy has its own allowance
    assert await _signups(proxied_app, ["6.6.6.6, 198.51.100.5"]) == [201]


async def test_the_deprecated_one_hop_alias_cannot_be_dodged_either(
    backend: str, redis_prefix: str, bridge: UpstashBridge, raw_redis: Any, clean_database: None
) -> None:
    settings = make_settings(
        backend, redis_prefix, bridge.url, TRUSTED_PROXIES="", TRUST_PROXY_HEADERS=True
    )
    app = create_app(settings)
    try:
        spoofed = [f"{i}.{i}.{i}.{i}, 198.51.100.4" for i in range(1, SIGNUP_LIMIT + 2)]
        assert await _signups(app, spoofed) == [201] * SIGNUP_LIMIT + [429]
    finally:
        await app.state.services.close()
