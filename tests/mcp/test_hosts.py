"""The Host/Origin allow-lists of `POST /mcp`, built from the settings."""

from __future__ import annotations

from typing import Any

from app.core.config import Settings
from app.mcp.hosts import allowed_hosts, allowed_origins, host_of


def build(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_host_of_takes_urls_and_bare_names() -> None:
    assert host_of("https://Shop.Example.com/base/") == "shop.example.com"
    assert host_of("agentmall-abc.vercel.app") == "agentmall-abc.vercel.app"
    assert host_of("http://localhost:8000") == "localhost:8000"
    assert host_of("") is None and host_of(None) is None


def test_vercel_hostnames_and_the_public_base_url_are_allowed_on_any_port() -> None:
    settings = build(
        PUBLIC_BASE_URL="https://api.shop.example",
        VERCEL_URL="agentmall-abc123-team.vercel.app",
        VERCEL_PROJECT_PRODUCTION_URL="agentmall.vercel.app",
        VERCEL_BRANCH_URL="agentmall-git-main-team.vercel.app",
    )
    hosts = allowed_hosts(settings)
    for name in (
        "api.shop.example",
        "agentmall.vercel.app",
        "agentmall-abc123-team.vercel.app",
        "agentmall-git-main-team.vercel.app",
        "localhost",
        "127.0.0.1",
        "[::1]",
    ):
        assert name in hosts and f"{name}:*" in hosts
    assert len(hosts) == len(set(hosts))
    assert not any("*." in h for h in hosts)  # the SDK has no subdomain wildcards
    origins = allowed_origins(settings)
    assert "https://api.shop.example" in origins and "https://agentmall.vercel.app" in origins
    assert "http://localhost:*" in origins and "http://evil.example" not in origins


def test_a_base_url_with_a_port_is_allowed_exactly() -> None:
    hosts = allowed_hosts(build(PUBLIC_BASE_URL="http://localhost:8000"))
    assert "localhost:8000" in hosts and "localhost:8000:*" not in hosts
    assert allowed_origins(build(PUBLIC_BASE_URL="http://localhost:8000"))[0] == (
        "http://localhost:8000"
    )
