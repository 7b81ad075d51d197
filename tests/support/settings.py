"""Settings for an app on this machine's services (tests and benchmarks), never read from .env."""

from __future__ import annotations

import os
from typing import Any

from app.core.config import Settings

# The services the suite uses: the defaults are this machine's; the environment may point the
# whole suite elsewhere (README, "Tests"). Every fixture and helper reads these, never a literal.
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
TEST_PG_ADMIN_URL = os.environ.get(
    "TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)

# The peers test clients use (httpx's ASGITransport: 127.0.0.1 unless told, conftest: 203.0.113.7)
# act as trusted proxies, so a test can say which client address a request comes from with
# X-Forwarded-For (see `make_account`).
TEST_PROXIES = "203.0.113.0/24,127.0.0.1"

# A Redis budget no loaded test machine exceeds. The default (REDIS_TIMEOUT_MS, 500 ms) is passed
# now and then under load, and then the gate fails open by design: the request is served from the
# cached key without being counted, a policy change is not seen, and the invalid-key limiter lets
# a failure through uncounted. Tests that count exactly, or expect a change on the very next
# request, use it.
PATIENT_REDIS_TIMEOUT_MS = 10_000


def local_settings(
    backend: str,
    *,
    prefix: str,
    database_url: str,
    redis_url: str,
    admin_key: str,
    cron_secret: str,
    bridge_url: str | None = None,
    upstash_token: str | None = None,
    **extra: Any,
) -> Settings:
    """`backend`: "redis" (REDIS_URL), "upstash" (the REST bridge) or "embedded"."""
    values: dict[str, Any] = {
        "DATABASE_URL": database_url,
        "ADMIN_API_KEY": admin_key,
        "CRON_SECRET": cron_secret,
        "REDIS_KEY_PREFIX": prefix,
        "LOAD_SAMPLE_CATALOG": False,
        "PUBLIC_BASE_URL": "https://api.agentmall.test",
        "UPSTASH_REDIS_REST_URL": None,
        "UPSTASH_REDIS_REST_TOKEN": None,
        "REDIS_URL": None,
        "TRUSTED_PROXIES": TEST_PROXIES,
    }
    if backend == "redis":
        values["REDIS_URL"] = redis_url
    elif backend == "upstash":
        values["UPSTASH_REDIS_REST_URL"] = bridge_url
        values["UPSTASH_REDIS_REST_TOKEN"] = upstash_token
    values.update(extra)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]
