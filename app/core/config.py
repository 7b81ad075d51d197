"""Settings: one `BaseSettings`, read from the environment (and `.env`), validated at start-up.

A missing or malformed setting fails with a message that names it. On Vercel production the app
refuses to start on the embedded defaults (SQLite file, in-process Redis): they would silently lose
every count and key on the next cold start.
"""

import hashlib
import hmac
import ipaddress
import os
import secrets
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Self
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Domain separation: a cursor key derived from another secret is useless for anything else.
CURSOR_KEY_CONTEXT = b"agentmall/cursor/v1"
# No secret configured at all (the embedded local default): a key per process, so cursors do not
# survive a restart (fine locally; any deployment sets ADMIN_API_KEY or CRON_SECRET).
_PROCESS_CURSOR_KEY = secrets.token_bytes(32)
PLACEHOLDERS = {"changeme", "change-me", "changethis", "secret", "xxx", "todo", "your-secret"}
DEFAULT_SQLITE_FILE = "agentmall.db"
DEFAULT_SQLITE_URL = f"sqlite+aiosqlite:///./{DEFAULT_SQLITE_FILE}"


def default_database_url() -> str:
    """The embedded SQLite file: `./agentmall.db`, or the same name in the system temp directory
    when the current directory is not writable (Vercel and Lambda: only /tmp is)."""
    existing = os.path.exists(DEFAULT_SQLITE_FILE)
    if os.access(".", os.W_OK) and (not existing or os.access(DEFAULT_SQLITE_FILE, os.W_OK)):
        return DEFAULT_SQLITE_URL
    return "sqlite+aiosqlite:///" + (Path(tempfile.gettempdir()) / DEFAULT_SQLITE_FILE).as_posix()


def normalise_database_url(url: str) -> str:
    """Turn a provider URL (`postgres://…?sslmode=require`) into one SQLAlchemy+asyncpg accepts."""
    parts = urlsplit(url)
    scheme = parts.scheme
    if scheme in {"postgres", "postgresql", "postgresql+asyncpg"}:
        query = []
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            if key == "sslmode":  # asyncpg spells it `ssl`
                query.append(("ssl", value))
            elif key in {"channel_binding", "pgbouncer"}:  # libpq/Prisma-only options
                continue
            else:
                query.append((key, value))
        return urlunsplit(("postgresql+asyncpg", parts.netloc, parts.path, urlencode(query), ""))
    if scheme in {"sqlite", "sqlite+aiosqlite"}:
        return "sqlite+aiosqlite" + url[len(scheme) :]
    raise ValueError("must be a postgres://, postgresql:// or sqlite:// URL")


class Settings(BaseSettings):
    """Every setting AgentMall reads; `.env.example` documents each one."""

    model_config = SettingsConfigDict(
        env_file=".env", extra="ignore", case_sensitive=True, env_ignore_empty=True
    )

    # Secrets are `SecretStr` (never in a repr, a log line or a traceback); the two URLs may carry
    # passwords, so they are kept out of the repr too.
    DATABASE_URL: str = Field(default_factory=default_database_url, repr=False)
    UPSTASH_REDIS_REST_URL: str | None = None
    UPSTASH_REDIS_REST_TOKEN: SecretStr | None = None
    REDIS_URL: str | None = Field(default=None, repr=False)
    ADMIN_API_KEY: SecretStr | None = None
    CRON_SECRET: SecretStr | None = None
    CURSOR_SECRET: SecretStr | None = None
    PUBLIC_BASE_URL: str = "http://localhost:8000"

    # Billing (Stripe). Without the secret key the billing endpoints answer 503.
    STRIPE_SECRET_KEY: SecretStr | None = None
    STRIPE_WEBHOOK_SECRET: SecretStr | None = None
    STRIPE_API_BASE: str | None = None  # a local Stripe-compatible server (tests), else Stripe
    # Email (quota notices): any SMTP provider, e.g. smtps://user:password@smtp.example.com:465
    SMTP_URL: SecretStr | None = None
    EMAIL_FROM: str | None = Field(default=None, max_length=254)
    RATE_LIMIT_FAILURE_MODE: Literal["open", "closed"] = "open"
    # Where product search runs: "database" = PostgreSQL full text (SQLite FTS5 when embedded).
    SEARCH_ENGINE: Literal["database"] = "database"

    # Tuning knobs with safe defaults.
    REDIS_TIMEOUT_MS: int = Field(default=500, ge=20, le=10_000)
    # Default: "am:" locally, "am:<VERCEL_ENV>:" on Vercel, so preview and production deployments
    # sharing one Upstash database never share counters, versions or limits.
    REDIS_KEY_PREFIX: str = Field(default="am:", min_length=1, max_length=64)
    DB_MAX_CONNECTIONS: int = Field(default=10, ge=1, le=1000)
    # Per-instance pool (PostgreSQL and SQLite; 0: none kept): connections kept open between
    # requests, how long one may sit idle before it is checked (one round trip, PostgreSQL) on
    # its next use, and its maximum age.
    DB_POOL_SIZE: int = Field(default=2, ge=0, le=100)
    DB_POOL_IDLE_CHECK_SECONDS: float = Field(default=10, ge=0, le=3600)
    DB_POOL_MAX_AGE_SECONDS: int = Field(default=300, ge=1, le=86_400)
    KEY_CACHE_TTL_SECONDS: float = Field(default=60, ge=0, le=3600)
    # Hot product reads (docs/architecture.md): each instance keeps the JSON of products it read,
    # served while Redis says their version is unchanged. Bounded by entries and bytes (0: off).
    PRODUCT_CACHE_MAX_ENTRIES: int = Field(default=10_000, ge=0, le=1_000_000)
    PRODUCT_CACHE_MAX_BYTES: int = Field(default=16 * 1024 * 1024, ge=0, le=1024 * 1024 * 1024)
    # Usage settlement (docs/billing.md): admitted calls are counted in buckets of this many
    # seconds; a bucket is billed (settled) once it closed more than USAGE_SETTLE_AFTER_SECONDS
    # ago, which must exceed the longest a request can run (Vercel: the function's maxDuration,
    # 30 s in vercel.json) so that no refund of a failed call can reach a billed bucket.
    USAGE_BUCKET_SECONDS: int = Field(default=60, ge=1, le=3600)
    USAGE_SETTLE_AFTER_SECONDS: int = Field(default=60, ge=1, le=3600)
    # The roll-up of Redis counters into PostgreSQL runs at most this often (its cron fires every
    # minute and skips until the interval has passed): what a Redis that loses its data can lose.
    USAGE_ROLLUP_INTERVAL_SECONDS: int = Field(default=300, ge=60, le=86_400)
    # Where the `reconcile-billing` cron sends a billing mismatch (over SMTP_URL); else a log line
    # at ERROR.
    FOUNDER_EMAIL: str | None = Field(default=None, max_length=254)
    SIGNUPS_PER_IP_PER_HOUR: int = Field(default=5, ge=1, le=10_000)
    PUBLIC_REQUESTS_PER_IP_PER_MINUTE: int = Field(default=60, ge=1, le=100_000)
    INVALID_KEYS_PER_IP_PER_MINUTE: int = Field(default=20, ge=1, le=100_000)
    # Portal sign-in links sent, per sliding hour: per client address and per email address.
    SIGN_IN_LINKS_PER_IP_PER_HOUR: int = Field(default=20, ge=1, le=100_000)
    SIGN_IN_LINKS_PER_EMAIL_PER_HOUR: int = Field(default=5, ge=1, le=10_000)
    # Billing links (checkout, portal, and their keyless upgrade/manage links), per sliding hour:
    # each may cost a Stripe call, so neither one account nor one address may spend many.
    BILLING_REQUESTS_PER_ACCOUNT_PER_HOUR: int = Field(default=30, ge=1, le=10_000)
    BILLING_REQUESTS_PER_IP_PER_HOUR: int = Field(default=60, ge=1, le=100_000)
    TRUSTED_PROXIES: str = Field(default="", max_length=4096)
    TRUST_PROXY_HEADERS: bool = False  # deprecated: trust exactly one hop (see TRUSTED_PROXIES)
    LOAD_SAMPLE_CATALOG: bool = True
    # Test/dev only: `host:port` pairs (comma-separated) that outbound webhooks may call over plain
    # http and that may resolve to loopback. Empty (the default) keeps the SSRF guard whole.
    WEBHOOK_ALLOW_HOSTS: str = Field(default="", max_length=4096)
    VERCEL_ENV: str | None = None
    VERCEL: str | None = None
    # Host names Vercel sets on every deployment (no scheme): the MCP endpoint answers to these
    # (and to PUBLIC_BASE_URL's host); any other Host header is refused (DNS-rebinding guard).
    VERCEL_URL: str | None = None
    VERCEL_PROJECT_PRODUCTION_URL: str | None = None
    VERCEL_BRANCH_URL: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _prefix_per_environment(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("REDIS_KEY_PREFIX") and data.get("VERCEL_ENV"):
            env = "".join(c for c in str(data["VERCEL_ENV"]).lower() if c.isalnum())[:32]
            data = {**data, "REDIS_KEY_PREFIX": f"am:{env or 'vercel'}:"}
        return data

    @field_validator("DATABASE_URL")
    @classmethod
    def _database_url(cls, value: str) -> str:
        return normalise_database_url(value.strip() or default_database_url())

    @field_validator("UPSTASH_REDIS_REST_URL")
    @classmethod
    def _upstash_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        parts = urlsplit(value.strip())
        local = parts.hostname in {"127.0.0.1", "localhost", "::1"}
        if parts.scheme != "https" and not (parts.scheme == "http" and local):
            raise ValueError("must be an https:// URL (http:// only for localhost)")
        return value.strip().rstrip("/")

    @field_validator("REDIS_URL")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        if urlsplit(value.strip()).scheme not in {"redis", "rediss", "unix"}:
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value.strip()

    @field_validator("TRUSTED_PROXIES")
    @classmethod
    def _trusted_proxies(cls, value: str) -> str:
        items = [item.strip() for item in value.split(",") if item.strip()]
        for item in items:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError as exc:
                raise ValueError(f"{item!r} is not an IP address or CIDR network") from exc
        return ",".join(items)

    @field_validator("WEBHOOK_ALLOW_HOSTS")
    @classmethod
    def _webhook_allow_hosts(cls, value: str) -> str:
        items = [item.strip().lower() for item in value.split(",") if item.strip()]
        for item in items:
            host, sep, port = item.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{item!r} is not host:port (e.g. 127.0.0.1:8123)")
        return ",".join(items)

    @field_validator("STRIPE_SECRET_KEY", mode="before")
    @classmethod
    def _stripe_key(cls, value: str | SecretStr | None) -> str | None:
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        if not raw:
            return None
        if not raw.startswith(("sk_test_", "sk_live_", "rk_test_", "rk_live_")):
            raise ValueError("must be a Stripe secret or restricted key (sk_… or rk_…)")
        return raw

    @field_validator("STRIPE_WEBHOOK_SECRET", mode="before")
    @classmethod
    def _stripe_webhook_secret(cls, value: str | SecretStr | None) -> str | None:
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        if not raw:
            return None
        if not raw.startswith("whsec_") or len(raw) < 16:
            raise ValueError("must be the endpoint's signing secret (whsec_…)")
        return raw

    @field_validator("STRIPE_API_BASE")
    @classmethod
    def _stripe_api_base(cls, value: str | None) -> str | None:
        if not value:
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValueError("must be an absolute http(s) URL such as http://127.0.0.1:12111")
        return value.strip().rstrip("/")

    @field_validator("SMTP_URL", mode="before")
    @classmethod
    def _smtp_url(cls, value: str | SecretStr | None) -> str | None:
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        if not raw:
            return None
        parts = urlsplit(raw.strip())
        if parts.scheme not in {"smtp", "smtps", "smtp+starttls"} or not parts.hostname:
            raise ValueError("must be smtp://, smtp+starttls:// or smtps://[user:password@]host")
        return raw.strip()

    @field_validator("PUBLIC_BASE_URL")
    @classmethod
    def _public_base_url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValueError("must be an absolute http(s) URL such as https://api.example.com")
        return value.strip().rstrip("/")

    @field_validator(
        "ADMIN_API_KEY", "CRON_SECRET", "CURSOR_SECRET", "UPSTASH_REDIS_REST_TOKEN", mode="before"
    )
    @classmethod
    def _secret(cls, value: str | SecretStr | None) -> str | None:
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if value is None or value == "":
            return None
        if value.strip().lower() in PLACEHOLDERS:
            raise ValueError("is a placeholder value; generate a real secret")
        if len(value) < 16:
            raise ValueError("must be at least 16 characters long")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if bool(self.UPSTASH_REDIS_REST_URL) != bool(self.UPSTASH_REDIS_REST_TOKEN):
            raise ValueError(
                "UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN must be set together"
            )
        if self.is_production:
            if self.DATABASE_URL.startswith("sqlite"):
                raise ValueError("DATABASE_URL must point at PostgreSQL in production")
            if not self.UPSTASH_REDIS_REST_URL and not self.REDIS_URL:
                raise ValueError("UPSTASH_REDIS_REST_URL (or REDIS_URL) is required in production")
            if not self.CRON_SECRET:
                raise ValueError("CRON_SECRET is required in production")
            if not self.STRIPE_SECRET_KEY:
                raise ValueError("STRIPE_SECRET_KEY is required in production (paid plans)")
            if not self.STRIPE_WEBHOOK_SECRET:
                raise ValueError("STRIPE_WEBHOOK_SECRET is required in production (paid plans)")
            if not self.SMTP_URL:
                raise ValueError(
                    "SMTP_URL is required in production (the portal's sign-in links are emailed)"
                )
            if self.WEBHOOK_ALLOW_HOSTS:
                raise ValueError("WEBHOOK_ALLOW_HOSTS is for tests and development only")
        if self.SMTP_URL and not self.EMAIL_FROM:
            raise ValueError("EMAIL_FROM is required with SMTP_URL")
        return self

    @property
    def cursor_key(self) -> bytes:
        """The list-cursor MAC key: from CURSOR_SECRET, else ADMIN_API_KEY, CRON_SECRET, Upstash."""
        return self.signing_key(CURSOR_KEY_CONTEXT)

    def signing_key(self, context: bytes) -> bytes:
        """A MAC key for one purpose (`context`), derived from the first configured secret:
        CURSOR_SECRET, ADMIN_API_KEY, CRON_SECRET, the Upstash token; random per process if none."""
        secret = (
            self.CURSOR_SECRET
            or self.ADMIN_API_KEY
            or self.CRON_SECRET
            or self.UPSTASH_REDIS_REST_TOKEN
        )
        if secret is None:
            return hmac.new(_PROCESS_CURSOR_KEY, context, hashlib.sha256).digest()
        key = secret.get_secret_value().encode()
        return hmac.new(key, context, hashlib.sha256).digest()

    @property
    def is_production(self) -> bool:
        return self.VERCEL_ENV == "production"

    @property
    def on_vercel(self) -> bool:
        return bool(self.VERCEL)

    @property
    def redis_backend(self) -> Literal["upstash", "url", "embedded"]:
        if self.UPSTASH_REDIS_REST_URL:
            return "upstash"
        return "url" if self.REDIS_URL else "embedded"

    @property
    def is_sqlite(self) -> bool:
        return self.DATABASE_URL.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (tests build their own and pass them to `create_app`)."""
    return Settings()
