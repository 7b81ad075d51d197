"""Settings: one `BaseSettings`, read from the environment (and `.env`), validated at start-up.

A missing or malformed setting fails with a message that names it. On Vercel production the app
refuses to start on the embedded defaults (SQLite file, in-process Redis): they would silently lose
every count and key on the next cold start.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDERS = {"changeme", "change-me", "changethis", "secret", "xxx", "todo", "your-secret"}
DEFAULT_SQLITE_URL = "sqlite+aiosqlite:///./agentmall.db"


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

    DATABASE_URL: str = DEFAULT_SQLITE_URL
    UPSTASH_REDIS_REST_URL: str | None = None
    UPSTASH_REDIS_REST_TOKEN: str | None = None
    REDIS_URL: str | None = None
    ADMIN_API_KEY: str | None = None
    CRON_SECRET: str | None = None
    PUBLIC_BASE_URL: str = "http://localhost:8000"
    RATE_LIMIT_FAILURE_MODE: Literal["open", "closed"] = "open"

    # Tuning knobs with safe defaults.
    REDIS_TIMEOUT_MS: int = Field(default=500, ge=20, le=10_000)
    REDIS_KEY_PREFIX: str = Field(default="am:", max_length=64)
    DB_MAX_CONNECTIONS: int = Field(default=10, ge=1, le=1000)
    KEY_CACHE_TTL_SECONDS: float = Field(default=60, ge=0, le=3600)
    SIGNUPS_PER_IP_PER_HOUR: int = Field(default=5, ge=1, le=10_000)
    PUBLIC_REQUESTS_PER_IP_PER_MINUTE: int = Field(default=60, ge=1, le=100_000)
    TRUST_PROXY_HEADERS: bool = False
    LOAD_SAMPLE_CATALOG: bool = True
    VERCEL_ENV: str | None = None
    VERCEL: str | None = None

    @field_validator("DATABASE_URL")
    @classmethod
    def _database_url(cls, value: str) -> str:
        return normalise_database_url(value.strip() or DEFAULT_SQLITE_URL)

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

    @field_validator("PUBLIC_BASE_URL")
    @classmethod
    def _public_base_url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValueError("must be an absolute http(s) URL such as https://api.example.com")
        return value.strip().rstrip("/")

    @field_validator("ADMIN_API_KEY", "CRON_SECRET", "UPSTASH_REDIS_REST_TOKEN")
    @classmethod
    def _secret(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if value.strip().lower() in PLACEHOLDERS:
            raise ValueError("is a placeholder value; generate a real secret")
        if len(value) < 16:
            raise ValueError("must be at least 16 characters long")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
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
        return self

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
