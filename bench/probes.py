"""Counters the benchmark reads: redis-py writes on the wire, and Redis `INFO commandstats`.

* `RedisWireTap` wraps `send_packed_command` of redis-py's sync and asyncio connections. Every call
  is one write followed by reading the replies, i.e. one round trip; a pipeline is one write of
  several commands (one round trip, several commands). Commands are counted by parsing the RESP
  arrays in the packed bytes. Only writes made on the benchmark's own thread count, so the
  `UpstashBridge` (its own thread, also redis-py) is not mixed in.
* `read_commandstats` reads `INFO commandstats` from the Redis at a given URL (the one the measured
  traffic goes to: `BENCH_REDIS_URL`) over a plain socket (not through redis-py, so the tap never
  sees it). The figures are server-wide: every client of the shared Redis shows up, and commands
  run by Lua scripts (`redis.call`) are counted under their own names as well.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, fields
from typing import Any

import redis.asyncio.connection as async_connection
import redis.connection as sync_connection
from redis.connection import SSLConnection, parse_url

Packed = bytes | str | memoryview | Iterable[bytes | memoryview]


def resp_command_names(data: bytes) -> list[str]:
    """The name of every RESP array (command) in `data`, with the subcommand for container
    commands (e.g. "CLIENT SETINFO")."""
    names, i = [], 0
    while i < len(data):
        if data[i : i + 1] != b"*":
            raise ValueError(f"not a RESP command at byte {i}")
        end = data.index(b"\r\n", i)
        argc, i = int(data[i + 1 : end]), end + 2
        args: list[bytes] = []
        for _ in range(argc):
            end = data.index(b"\r\n", i)
            start, i = end + 2, end + 2 + int(data[i + 1 : end]) + 2
            if len(args) < 2:
                args.append(data[start : i - 2])
        name = args[0].decode(errors="replace").upper() if args else "?"
        if name in CONTAINER_COMMANDS and len(args) > 1:
            name = f"{name} {args[1].decode(errors='replace').upper()}"
        names.append(name)
    return names


CONTAINER_COMMANDS = {"CLIENT", "SCRIPT", "CONFIG", "COMMAND"}


def _as_bytes(command: Packed) -> bytes:
    if isinstance(command, str):
        return command.encode()
    if isinstance(command, bytes | memoryview):
        return bytes(command)
    return b"".join(bytes(chunk) for chunk in command)


class RedisWireTap:
    """Counts round trips and commands redis-py sends from the installing thread."""

    def __init__(self) -> None:
        self.round_trips = 0
        self.commands = 0
        self.names: Counter[str] = Counter()
        self._thread = threading.get_ident()
        self._restore: list[Callable[[], None]] = []

    def record(self, command: Packed) -> None:
        if threading.get_ident() != self._thread:
            return
        names = resp_command_names(_as_bytes(command))
        self.round_trips += 1
        self.commands += len(names)
        self.names.update(names)

    def install(self) -> None:
        sync_cls: Any = sync_connection.AbstractConnection
        async_cls: Any = async_connection.AbstractConnection
        sync_send: Callable[..., None] = sync_cls.send_packed_command
        async_send: Callable[..., Awaitable[None]] = async_cls.send_packed_command
        tap = self

        def send_sync(conn: Any, command: Packed, check_health: bool = True) -> None:
            tap.record(command)
            sync_send(conn, command, check_health)

        async def send_async(conn: Any, command: Packed, check_health: bool = True) -> None:
            tap.record(command)
            await async_send(conn, command, check_health)

        sync_cls.send_packed_command = send_sync
        async_cls.send_packed_command = send_async
        self._restore = [
            lambda: setattr(sync_cls, "send_packed_command", sync_send),
            lambda: setattr(async_cls, "send_packed_command", async_send),
        ]

    def uninstall(self) -> None:
        for restore in self._restore:
            restore()
        self._restore = []


@dataclass(frozen=True, slots=True)
class CommandStats:
    """Server-wide call totals from `INFO commandstats`."""

    total: int  # every command execution, including those run inside Lua scripts
    info: int  # INFO and AUTH calls (the probe's own reads among them)
    scripts: int  # EVAL + EVALSHA (+ their _RO variants): one per script run
    script_usec: int  # server time in those script runs (their `redis.call`s included)

    def __sub__(self, other: CommandStats) -> CommandStats:
        return CommandStats(*(getattr(self, f.name) - getattr(other, f.name) for f in fields(self)))

    @property
    def executions(self) -> int:
        """Command executions, INFO and AUTH excluded (scripts count once plus each
        `redis.call`)."""
        return self.total - self.info


SCRIPT_COMMANDS = {"eval", "evalsha", "eval_ro", "evalsha_ro"}


def parse_commandstats(text: str) -> CommandStats:
    calls: dict[str, int] = {}
    usec: dict[str, int] = {}
    for line in text.splitlines():
        if not line.startswith("cmdstat_"):
            continue
        name, _, values = line[len("cmdstat_") :].partition(":")
        stats = dict(item.split("=", 1) for item in values.split(","))
        calls[name] = int(stats["calls"])
        usec[name] = int(stats["usec"])
    return CommandStats(
        total=sum(calls.values()),
        info=calls.get("info", 0) + calls.get("auth", 0),
        scripts=sum(calls.get(name, 0) for name in SCRIPT_COMMANDS),
        script_usec=sum(usec.get(name, 0) for name in SCRIPT_COMMANDS),
    )


def read_commandstats(url: str) -> CommandStats:
    """`INFO commandstats` of the Redis at `url` (redis://, rediss:// or unix://; AUTH sent when
    the URL has a password) over a fresh socket."""
    params = parse_url(url)
    with _connect(params) as sock:
        if params.get("password") is not None:
            auth = [b"AUTH", str(params["password"]).encode()]
            if params.get("username"):
                auth.insert(1, str(params["username"]).encode())
            sock.sendall(_pack(auth))
            reply, _ = _read_line(sock, b"")
            if not reply.startswith(b"+"):
                raise RuntimeError(f"AUTH refused by {_where(params)}: {reply!r}")
        sock.sendall(_pack([b"INFO", b"commandstats"]))
        header, body = _read_line(sock, b"")
        if not header.startswith(b"$"):
            raise RuntimeError(f"unexpected INFO reply from {_where(params)}: {header!r}")
        length = int(header[1:])
        while len(body) < length + 2:
            body += _recv(sock)
    return parse_commandstats(body[:length].decode())


def _connect(params: dict[str, Any]) -> socket.socket:
    if params.get("path"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(5)
        sock.connect(params["path"])
        return sock
    host, port = params.get("host", "localhost"), int(params.get("port", 6379))
    sock = socket.create_connection((host, port), timeout=5)
    if params.get("connection_class") is SSLConnection:
        return ssl.create_default_context().wrap_socket(sock, server_hostname=host)
    return sock


def _where(params: dict[str, Any]) -> str:
    return params.get("path") or f"{params.get('host', 'localhost')}:{params.get('port', 6379)}"


def _pack(args: list[bytes]) -> bytes:
    return b"".join([f"*{len(args)}\r\n".encode()] + [b"$%d\r\n%s\r\n" % (len(a), a) for a in args])


def _read_line(sock: socket.socket, buffer: bytes) -> tuple[bytes, bytes]:
    """The next CRLF-terminated line, and what was read past it."""
    while b"\r\n" not in buffer:
        buffer += _recv(sock)
    line, rest = buffer.split(b"\r\n", 1)
    return line, rest


def _recv(sock: socket.socket) -> bytes:
    chunk = sock.recv(65536)
    if not chunk:
        raise ConnectionError("Redis closed the connection during INFO")
    return chunk
