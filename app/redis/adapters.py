"""The three adapters behind `RedisPort`, and the factory that picks one from the settings."""

from __future__ import annotations

from typing import Any

from app.core.config import Settings
from app.redis.port import RedisPort, RedisValue


class UpstashPort(RedisPort):
    """Upstash over its REST API (`upstash-redis` asyncio client): production on Vercel.

    One command = one HTTPS round trip. The SDK's retry (sleep 3 s, send again) is switched off:
    it would stall a request for seconds and could run a counting script twice.
    """

    backend = "upstash"

    def __init__(self, url: str, token: str, *, timeout_ms: int) -> None:
        super().__init__(timeout_ms=timeout_ms)
        from upstash_redis.asyncio import Redis

        self.client = Redis(
            url=url, token=token, rest_retries=0, rest_retry_interval=0, allow_telemetry=False
        )

    async def _evalsha(self, sha: str, keys: list[str], args: list[Any]) -> RedisValue:
        return await self.client.evalsha(sha, keys, [str(a) for a in args])

    async def _eval(self, script: str, keys: list[str], args: list[Any]) -> RedisValue:
        return await self.client.eval(script, keys, [str(a) for a in args])

    async def _execute(self, command: list[Any]) -> RedisValue:
        return await self.client.execute([str(c) for c in command])

    async def close(self) -> None:
        await self.client.close()


class RedisPyPort(RedisPort):
    """The embedded in-process Redis (`fakeredis` + Lua), through redis-py's command API."""

    def __init__(self, client: Any, backend: str, *, timeout_ms: int) -> None:
        super().__init__(timeout_ms=timeout_ms)
        self.client = client
        self.backend = backend

    async def _evalsha(self, sha: str, keys: list[str], args: list[Any]) -> RedisValue:
        return await self.client.evalsha(sha, len(keys), *keys, *args)

    async def _eval(self, script: str, keys: list[str], args: list[Any]) -> RedisValue:
        return await self.client.eval(script, len(keys), *keys, *args)

    async def _execute(self, command: list[Any]) -> RedisValue:
        return await self.client.execute_command(*command)

    async def close(self) -> None:
        await self.client.aclose()


class RedisUrlPort(RedisPyPort):
    """Any Redis by URL (`redis` asyncio with hiredis): self-hosting, and the benchmarks.

    Each command goes out packed by hiredis on one of redis-py's pooled connections, and its reply
    comes back as parsed, with no response callback (`SET` says "OK" or None, as on Upstash;
    `PING` "PONG"). redis-py's command layer (a Python encoder call per argument, its retry
    wrapper, its callbacks) cost more than the round trip on the hot path
    (docs/architecture.md#hot-product-reads). The port's own timeout bounds every call, and
    redis-py closes a connection whose reply was not read in full (timeout, cancellation, error),
    so a late reply never reaches the next command on that connection.
    """

    def __init__(self, client: Any, *, timeout_ms: int) -> None:
        import hiredis

        super().__init__(client, "redis", timeout_ms=timeout_ms)
        self._pack = hiredis.pack_command

    async def _evalsha(self, sha: str, keys: list[str], args: list[Any]) -> RedisValue:
        return await self._send(("EVALSHA", sha, len(keys), *keys, *args))

    async def _eval(self, script: str, keys: list[str], args: list[Any]) -> RedisValue:
        return await self._send(("EVAL", script, len(keys), *keys, *args))

    async def _execute(self, command: list[Any]) -> RedisValue:
        return await self._send(tuple(command))

    async def _send(self, command: tuple[Any, ...]) -> RedisValue:
        pool = self.client.connection_pool
        connection = await pool.get_connection()
        try:
            await connection.send_packed_command(self._pack(command), check_health=False)
            return await connection.read_response()
        finally:
            await pool.release(connection)


_embedded_server: Any = None


def _embedded_client() -> Any:
    """One in-process Redis per process, shared by every app instance in it."""
    global _embedded_server
    import fakeredis

    if _embedded_server is None:
        _embedded_server = fakeredis.FakeServer()
    return fakeredis.FakeAsyncRedis(server=_embedded_server, decode_responses=True)


def build_redis(settings: Settings) -> RedisPort:
    """Upstash if its settings are present, else REDIS_URL, else the embedded Redis."""
    timeout_ms = settings.REDIS_TIMEOUT_MS
    url, token = settings.UPSTASH_REDIS_REST_URL, settings.UPSTASH_REDIS_REST_TOKEN
    if url and token:
        return UpstashPort(url, token.get_secret_value(), timeout_ms=timeout_ms)
    if settings.REDIS_URL:
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        seconds = timeout_ms / 1000
        client = aioredis.from_url(
            settings.REDIS_URL,
            decode_responses=True,
            protocol=2,  # replies shaped like Upstash's (RESP3 would turn hashes into dicts)
            socket_timeout=None,  # the port bounds every call (one timer per command, not three)
            socket_connect_timeout=seconds,
            retry_on_timeout=False,
            retry=Retry(NoBackoff(), 0),  # never resend a counting script
        )
        return RedisUrlPort(client, timeout_ms=timeout_ms)
    return RedisPyPort(_embedded_client(), "embedded", timeout_ms=timeout_ms)
