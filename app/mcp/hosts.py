"""The Host and Origin values `POST /mcp` accepts (the SDK's DNS-rebinding protection).

The SDK refuses (421) a request whose `Host` is not listed, and (403) one whose `Origin` is not;
entries are exact or `host:*` (any port), with no wildcards for subdomains. So the list is built
from what names this deployment: Vercel's `VERCEL_URL`, `VERCEL_PROJECT_PRODUCTION_URL` and
`VERCEL_BRANCH_URL`, the host of `PUBLIC_BASE_URL` (a custom domain), and localhost for local runs.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from app.core.config import Settings

LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]")


def host_of(value: str | None) -> str | None:
    """`https://Shop.example.com/x` or `shop.example.com` → `shop.example.com` (port kept)."""
    if not value or not value.strip():
        return None
    text = value.strip()
    netloc = urlsplit(text if "://" in text else f"//{text}").netloc
    return netloc.rsplit("@", 1)[-1].lower() or None


def public_hosts(settings: Settings) -> list[str]:
    """The deployment's own host names, in a stable order, without duplicates."""
    names = (
        settings.PUBLIC_BASE_URL,
        settings.VERCEL_PROJECT_PRODUCTION_URL,
        settings.VERCEL_URL,
        settings.VERCEL_BRANCH_URL,
    )
    return list(dict.fromkeys(h for h in map(host_of, names) if h))


def allowed_hosts(settings: Settings) -> list[str]:
    """Each public host as sent (with or without a port), then localhost on any port."""
    hosts: list[str] = []
    for host in [*public_hosts(settings), *LOCAL_HOSTS]:
        hosts.append(host)
        if ":" not in host.rpartition("]")[2]:  # no port given: any port (`[::1]` has none)
            hosts.append(f"{host}:*")
    return list(dict.fromkeys(hosts))


def allowed_origins(settings: Settings) -> list[str]:
    """Browser origins: https on the public hosts (and PUBLIC_BASE_URL's exact origin),
    http and https on localhost."""
    origins: list[str] = []
    base = urlsplit(settings.PUBLIC_BASE_URL)
    origins.append(f"{base.scheme}://{base.netloc.lower()}")
    for host in public_hosts(settings):
        origins.append(f"https://{host}")
    for host in LOCAL_HOSTS:
        for scheme in ("http", "https"):
            origins += [f"{scheme}://{host}", f"{scheme}://{host}:*"]
    return list(dict.fromkeys(origins))
