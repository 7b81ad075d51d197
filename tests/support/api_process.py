"""The API as a separate process (uvicorn), for tests that kill an instance with SIGKILL."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import httpx

from app.core.config import Settings
from tests.conftest import ADMIN_KEY, CRON_SECRET, REDIS_URL, ROOT
from tests.support.http_stand_in import free_port


class ApiProcess:
    """The API as its own process (uvicorn), on the same PostgreSQL, Redis and Stripe stand-in."""

    def __init__(self, settings: Settings, *, stripe_url: str | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "DATABASE_URL": settings.DATABASE_URL,
            "REDIS_URL": REDIS_URL,
            "REDIS_KEY_PREFIX": settings.REDIS_KEY_PREFIX,
            "ADMIN_API_KEY": ADMIN_KEY,
            "CRON_SECRET": CRON_SECRET,
            "USAGE_BUCKET_SECONDS": str(settings.USAGE_BUCKET_SECONDS),
            "USAGE_SETTLE_AFTER_SECONDS": str(settings.USAGE_SETTLE_AFTER_SECONDS),
            "REDIS_TIMEOUT_MS": str(settings.REDIS_TIMEOUT_MS),
            "LOAD_SAMPLE_CATALOG": "false",
            "PUBLIC_BASE_URL": "https://api.agentmall.test",
        }
        if stripe_url:
            self.env |= {
                "STRIPE_SECRET_KEY": "sk_test_process0123456789",
                "STRIPE_API_BASE": stripe_url,
            }
        for name in ("UPSTASH_REDIS_REST_URL", "UPSTASH_REDIS_REST_TOKEN", "VERCEL", "VERCEL_ENV"):
            self.env.pop(name, None)
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        command = [sys.executable, "-m", "uvicorn", "api.index:app", "--port", str(self.port)]
        self.process = subprocess.Popen(
            [*command, "--log-level", "warning"], cwd=ROOT, env=self.env
        )
        async with httpx.AsyncClient(base_url=self.url) as probe:
            for _ in range(200):
                try:
                    if (await probe.get("/v1/health")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
        raise AssertionError("the API process did not start")

    def kill(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
