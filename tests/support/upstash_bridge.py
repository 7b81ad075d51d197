"""A stand-in for the Upstash Redis REST API, in front of a real Redis server.

Why this exists: production talks to Upstash through the `upstash-redis` SDK, which speaks HTTP, not
RESP. No Upstash server is reachable from the test machine, and mocking the SDK would test nothing
of what matters (argument formatting, base64 decoding, error mapping, pipelines, timeouts). This
bridge is a small but real HTTP server that speaks the REST protocol the SDK uses and executes every
command on a real Redis, so tests and benchmarks can run the real SDK end to end.

What it implements (the subset the SDK uses, see `upstash_redis/http.py`):

* `POST /` with a JSON array (`["EVALSHA", sha, 2, "k1", "k2", "a1"]`) answers
  `{"result": ...}`, or `{"error": "<Redis error text>"}` with HTTP 400.
* `POST /pipeline` and `POST /multi-exec` with a JSON array of commands answer a JSON array with one
  `{"result": ...}` / `{"error": ...}` per command; multi-exec runs inside MULTI/EXEC.
* `Authorization: Bearer <token>` is checked (401 `{"error": "Unauthorized"}` otherwise).
* `Upstash-Encoding: base64` base64-encodes every string in the result, except the status "OK".

Replies are read raw (no redis-py response callbacks) over RESP2, as Upstash answers (redis-py 8
would pick RESP3), so the SDK sees what Redis sent: bytes, ints, nil and nested arrays. Error text
is passed through verbatim, prefix included ("NOSCRIPT ...", "ERR ...", "WRONGTYPE ..."): redis-py
strips known prefixes into `exc.status_code`, which is put back here. RESP2 does not let redis-py
tell a status reply from a bulk string; both are sent the same way, which the SDK cannot tell apart
either (it decodes a plain "OK" as "OK").

`delay_seconds` sleeps before a request is executed, to simulate a hanging Upstash. If the client
gives up (disconnects) during the delay, the request is dropped without touching Redis, unless
`execute_after_disconnect` is set (a request stuck in the network that still reaches Redis after
its client gave up); `stop()` answers requests still sleeping with a 503 so shutdown is not held
up. `reply_delay_seconds` executes at once and sleeps before answering: the command ran, only its
answer is late. `delay_only`, when set, picks the requests both delays apply to (it is called with
each request's commands; a stateful one can pick, say, only the first `SET`).

Use `start()`/`stop()` (or `with UpstashBridge() as bridge:` and `bridge.url`) for a real uvicorn
server in a background thread; `app` is also a plain ASGI app (call `aclose()` on that loop after).
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any

import redis.asyncio as aioredis
import uvicorn
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import RedisError, ResponseError
from starlette.types import Receive, Scope, Send

from tests.support.settings import TEST_REDIS_URL

Arg = str | int | float
Command = list[Arg]


class _BadRequest(Exception):
    """The request body is not a command (or a list of commands) the bridge can run."""


def _error_text(exc: RedisError) -> str:
    """The error line exactly as Redis sent it (redis-py moves known prefixes to `status_code`)."""
    message = str(exc)
    prefix = getattr(exc, "status_code", None)
    return f"{prefix} {message}" if prefix else message


def _encode_arg(arg: Arg) -> bytes:
    if isinstance(arg, str):
        return arg.encode()
    if isinstance(arg, float):
        return repr(arg).encode()  # same as redis-py
    return str(arg).encode()


def _pack(commands: list[Command]) -> bytes:
    """RESP-encode commands ourselves: redis-py's packer splits a first argument with spaces."""
    out = bytearray()
    for command in commands:
        out += b"*%d\r\n" % len(command)
        for arg in command:
            data = _encode_arg(arg)
            out += b"$%d\r\n%s\r\n" % (len(data), data)
    return bytes(out)


def _to_json(value: Any, b64: bool) -> Any:
    """A raw RESP2 reply as the REST API sends it."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if isinstance(value, list):
        return [_to_json(item, b64) for item in value]
    if isinstance(value, RedisError):  # an error nested in an array reply
        value = _error_text(value)
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes):
        if not b64:
            return value.decode("utf-8", errors="replace")
        return "OK" if value == b"OK" else base64.b64encode(value).decode("ascii")
    raise TypeError(f"unexpected Redis reply type {type(value).__name__}")


def _entry(reply: Any, b64: bool) -> dict[str, Any]:
    if isinstance(reply, RedisError):
        return {"error": _error_text(reply)}
    return {"result": _to_json(reply, b64)}


def _parse_command(value: Any) -> Command:
    if not isinstance(value, list) or not value:
        raise _BadRequest("ERR a command must be a non-empty JSON array")
    for arg in value:
        if isinstance(arg, bool) or not isinstance(arg, str | int | float):
            raise _BadRequest(f"ERR unsupported argument type {type(arg).__name__}")
    return value


class UpstashBridge:
    """Upstash REST protocol in front of a real Redis; see the module docstring."""

    def __init__(
        self,
        redis_url: str = TEST_REDIS_URL,
        token: str = "test-token",
        *,
        delay_seconds: float = 0.0,
        execute_after_disconnect: bool = False,
        reply_delay_seconds: float = 0.0,
        delay_only: Callable[[list[Command]], bool] | None = None,
    ) -> None:
        self.redis_url = redis_url
        self.token = token
        self.delay_seconds = delay_seconds
        self.execute_after_disconnect = execute_after_disconnect
        self.reply_delay_seconds = reply_delay_seconds
        self.delay_only = delay_only  # which requests the delays apply to (None: every one)
        self.http_requests = 0  # HTTP requests received (including rejected ones)
        self.commands = 0  # Redis commands executed (MULTI/EXEC wrappers not counted)
        # One pool per event loop: the uvicorn thread's, or a test's loop via httpx.ASGITransport.
        self._pools: dict[asyncio.AbstractEventLoop, aioredis.ConnectionPool] = {}
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._url: str | None = None
        self._stopping = False

    def reset_counters(self) -> None:
        self.http_requests = 0
        self.commands = 0

    # -- server lifecycle -------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL of the running server, e.g. "http://127.0.0.1:54321"."""
        if self._url is None:
            raise RuntimeError("UpstashBridge is not started")
        return self._url

    def start(self) -> str:
        """Serve on 127.0.0.1 (free port) from a background thread; return the base URL."""
        if self._url is not None:
            return self._url
        self._stopping = False
        # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on sockets that say they are TCP,
        # and accepted sockets inherit it; without it, Nagle + delayed ACK add ~40 ms per request.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=port,
            interface="asgi3",
            loop="asyncio",
            lifespan="on",
            log_config=None,  # leave the test process's logging alone
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=2,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="upstash-bridge", daemon=True
        )
        thread.start()
        for _ in range(1000):  # up to 10 s
            if server.started or not thread.is_alive():
                break
            threading.Event().wait(0.01)
        if not server.started:
            server.should_exit = True
            thread.join(5)
            sock.close()
            raise RuntimeError("UpstashBridge failed to start")
        self._server, self._thread = server, thread
        self._url = f"http://127.0.0.1:{port}"
        return self._url

    def stop(self) -> None:
        """Shut the server down and wait for its thread (closes the Redis connections too)."""
        if self._server is None or self._thread is None:
            return
        self._stopping = True  # delayed requests answer 503 at once instead of holding the exit
        self._server.should_exit = True
        self._thread.join(10)
        self._server = self._thread = self._url = None

    def __enter__(self) -> UpstashBridge:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- ASGI ---------------------------------------------------------------------------------

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI application (usable with uvicorn or `httpx.ASGITransport`)."""
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await self.aclose()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        self.http_requests += 1

        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break

        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if headers.get("authorization") != f"Bearer {self.token}":
            await _respond(send, 401, {"error": "Unauthorized"})
            return
        path = scope["path"].rstrip("/")
        if path not in ("", "/pipeline", "/multi-exec"):
            await _respond(send, 404, {"error": "Not Found"})
            return
        if scope["method"] != "POST":
            await _respond(send, 405, {"error": "Method Not Allowed"})
            return
        b64 = headers.get("upstash-encoding", "").lower() == "base64"

        try:
            try:
                payload = json.loads(body)
            except ValueError as exc:
                raise _BadRequest(f"ERR invalid JSON body: {exc}") from exc
            if path == "":
                commands = [_parse_command(payload)]
            elif isinstance(payload, list) and payload:
                commands = [_parse_command(command) for command in payload]
            else:
                raise _BadRequest("ERR a pipeline must be a non-empty JSON array of commands")
        except _BadRequest as exc:
            await _respond(send, 400, {"error": str(exc)})
            return

        delayed = self.delay_only is None or self.delay_only(commands)
        if self.delay_seconds > 0 and delayed:
            outcome = await self._hang(receive, self.delay_seconds)
            if outcome == "disconnected" and self.execute_after_disconnect:
                await asyncio.sleep(self.delay_seconds)  # still on its way to Redis
                await self._run(commands)
                return
            if outcome == "disconnected":
                return  # the client gave up: like a request lost in a hanging server
            if outcome == "stopping":
                await _respond(send, 503, {"error": "UpstashBridge is stopping"})
                return

        if path == "":
            entry = _entry((await self._run(commands))[0], b64)
            if self.reply_delay_seconds > 0 and delayed:
                await asyncio.sleep(self.reply_delay_seconds)  # ran in Redis; the answer is late
            await _respond(send, 400 if "error" in entry else 200, entry)
        elif path == "/pipeline":
            await _respond(send, 200, [_entry(r, b64) for r in await self._run(commands)])
        else:
            await _respond(send, 200, [_entry(r, b64) for r in await self._run_multi(commands)])

    async def _hang(self, receive: Receive, seconds: float) -> str:
        """Sleep `seconds`, cut short by a client disconnect or by `stop()`."""

        async def wait_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        watcher = asyncio.ensure_future(wait_disconnect())
        try:
            while not self._stopping and (left := deadline - loop.time()) > 0:
                done, _ = await asyncio.wait({watcher}, timeout=min(left, 0.05))
                if done:
                    return "disconnected"
            return "stopping" if self._stopping else "elapsed"
        finally:
            watcher.cancel()

    # -- Redis ----------------------------------------------------------------------------------

    def _get_pool(self) -> aioredis.ConnectionPool:
        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop)
        if pool is None:
            # RESP2, as Upstash answers: redis-py >= 8 defaults to RESP3 (maps, sets, doubles).
            pool = self._pools[loop] = aioredis.ConnectionPool.from_url(self.redis_url, protocol=2)
        return pool

    async def aclose(self) -> None:
        """Close the Redis connections of the running loop (only needed without `start()`,
        e.g. after using `app` through `httpx.ASGITransport`; the server closes its own)."""
        pool = self._pools.pop(asyncio.get_running_loop(), None)
        if pool is not None:
            await pool.aclose()

    async def _exchange(self, commands: list[Command], replies: int) -> list[Any]:
        """Send `commands` in one write; read `replies` raw replies (errors as exception values)."""
        pool = self._get_pool()
        conn = await pool.get_connection()
        try:
            await conn.send_packed_command(_pack(commands))
            return [await _read_reply(conn) for _ in range(replies)]
        except BaseException:
            await conn.disconnect()  # the stream may be out of sync: never reuse it
            raise
        finally:
            await pool.release(conn)

    async def _run(self, commands: list[Command]) -> list[Any]:
        self.commands += len(commands)
        return await self._exchange(commands, len(commands))

    async def _run_multi(self, commands: list[Command]) -> list[Any]:
        self.commands += len(commands)
        replies = await self._exchange([["MULTI"], *commands, ["EXEC"]], len(commands) + 2)
        queued, executed = replies[1:-1], replies[-1]
        if isinstance(executed, list):
            return executed
        # EXEC failed (EXECABORT after a command was rejected while queueing): report the
        # queueing error for the rejected commands and the EXEC error for the others.
        return [q if isinstance(q, RedisError) else executed for q in queued]


async def _read_reply(conn: AbstractConnection) -> Any:
    try:
        return await conn.read_response(disable_decoding=True, disconnect_on_error=False)
    except ResponseError as exc:
        return exc
    except RedisError as exc:
        # redis-py raises some server error replies (LOADING, NOAUTH, WRONGPASS...) as
        # ConnectionError subclasses; the reply was fully read, so it is just another error.
        # Client-side failures (I/O, timeouts) have no status code and propagate.
        if getattr(exc, "status_code", None) is None:
            raise
        return exc


async def _respond(send: Send, status: int, payload: Any) -> None:
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
