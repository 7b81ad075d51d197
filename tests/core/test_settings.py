"""Settings fail at start-up, naming the bad setting."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from app.core.config import Settings


def build(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_defaults_are_the_embedded_stack() -> None:
    settings = build()
    assert settings.DATABASE_URL == "sqlite+aiosqlite:///./agentmall.db"
    assert settings.redis_backend == "embedded"
    assert settings.RATE_LIMIT_FAILURE_MODE == "open"


def test_provider_urls_are_normalised() -> None:
    settings = build(DATABASE_URL="postgres://u:p@db.example.com/app?sslmode=require")
    assert settings.DATABASE_URL == "postgresql+asyncpg://u:p@db.example.com/app?ssl=require"
    upstash = build(
        UPSTASH_REDIS_REST_URL="https://eu1-x.upstash.io/", UPSTASH_REDIS_REST_TOKEN="A" * 40
    )
    assert upstash.redis_backend == "upstash"
    assert upstash.UPSTASH_REDIS_REST_URL == "https://eu1-x.upstash.io"


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"DATABASE_URL": "mysql://x/y"}, "DATABASE_URL"),
        ({"REDIS_URL": "http://localhost:6379"}, "REDIS_URL"),  # isolation: not connected
        (
            {"UPSTASH_REDIS_REST_URL": "http://upstash.io", "UPSTASH_REDIS_REST_TOKEN": "A" * 40},
            "UPSTASH_REDIS_REST_URL",
        ),
        ({"UPSTASH_REDIS_REST_URL": "https://x.upstash.io"}, "UPSTASH_REDIS_REST_TOKEN"),
        ({"ADMIN_API_KEY": "changeme"}, "ADMIN_API_KEY"),
        ({"ADMIN_API_KEY": "short"}, "ADMIN_API_KEY"),
        ({"CRON_SECRET": "short"}, "CRON_SECRET"),
        ({"PUBLIC_BASE_URL": "api.example.com"}, "PUBLIC_BASE_URL"),
        ({"RATE_LIMIT_FAILURE_MODE": "maybe"}, "RATE_LIMIT_FAILURE_MODE"),
        ({"REDIS_TIMEOUT_MS": "0"}, "REDIS_TIMEOUT_MS"),
    ],
)
def test_bad_values_fail_naming_the_setting(values: dict[str, str], named: str) -> None:
    with pytest.raises(ValidationError) as caught:
        build(**values)
    assert named in str(caught.value)


def test_production_refuses_the_embedded_defaults() -> None:
    with pytest.raises(ValidationError) as caught:
        build(VERCEL_ENV="production")
    assert "DATABASE_URL" in str(caught.value)
    with pytest.raises(ValidationError) as caught:
        build(VERCEL_ENV="production", DATABASE_URL="postgresql://u@h/db")
    assert "UPSTASH_REDIS_REST_URL" in str(caught.value)
    required: dict[str, str] = {
        "DATABASE_URL": "postgresql://u@h/db",
        "UPSTASH_REDIS_REST_URL": "https://x.upstash.io",
        "UPSTASH_REDIS_REST_TOKEN": "A" * 40,
        "CRON_SECRET": "c" * 32,
        "STRIPE_SECRET_KEY": "sk_live_" + "k" * 24,
        "STRIPE_WEBHOOK_SECRET": "whsec_" + "w" * 32,
        "SMTP_URL": "smtps://user:pass@smtp.example.com:465",
        "EMAIL_FROM": "AgentMall <hello@example.com>",
    }
    for missing in ("CRON_SECRET", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "SMTP_URL"):
        with pytest.raises(ValidationError) as caught:
            build(VERCEL_ENV="production", **{k: v for k, v in required.items() if k != missing})
        assert f"{missing} is required in production" in str(caught.value)
    ok = build(VERCEL_ENV="production", **required)
    assert ok.is_production


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RATE_LIMIT_FAILURE_MODE", "closed")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/3")  # isolation: not connected
    settings = build()
    assert settings.RATE_LIMIT_FAILURE_MODE == "closed" and settings.redis_backend == "url"


def test_env_example_documents_every_setting() -> None:
    import re
    from pathlib import Path

    text = (Path(__file__).parents[2] / ".env.example").read_text()
    paragraphs = text.split("\n\n")
    for name in Settings.model_fields:
        block = next((p for p in paragraphs if re.search(rf"^(# )?{name}=", p, re.M)), None)
        assert block, f"{name} is missing from .env.example"
        comments = [
            line for line in block.splitlines() if line.startswith("# ") and "=" not in line
        ]
        assert comments, f"{name} has no comment in .env.example"


def test_secrets_never_appear_in_the_settings_repr() -> None:
    secrets = {
        "ADMIN_API_KEY": "admin-secret-value-0123456789",
        "CRON_SECRET": "cron-secret-value-0123456789",
        "CURSOR_SECRET": "cursor-secret-value-0123456789",
        "UPSTASH_REDIS_REST_TOKEN": "upstash-token-value-0123456789",
    }
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        UPSTASH_REDIS_REST_URL="https://x.upstash.io",
        DATABASE_URL="postgresql://app:db-password-0123@db.example.com/app",
        REDIS_URL="redis://:redis-password-0123@cache.example.com:6379/0",
        **secrets,
    )
    shown = repr(settings) + str(settings) + repr(settings.model_dump())
    for value in secrets.values():
        assert value not in shown
    assert "db-password-0123" not in repr(settings)
    assert "redis-password-0123" not in repr(settings)
    assert settings.ADMIN_API_KEY is not None
    assert settings.ADMIN_API_KEY.get_secret_value() == secrets["ADMIN_API_KEY"]
