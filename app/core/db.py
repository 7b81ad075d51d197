"""Database engine and the request-scoped session.

Serverless rules (NOTES.md): Vercel's Fluid compute and Lambda keep an instance warm across many
requests, so each instance keeps a *small* pool (`DB_POOL_SIZE`, a few connections, at most
`DB_MAX_CONNECTIONS` at once, each at most `DB_POOL_MAX_AGE_SECONDS` old): a warm request opens
no connection (opening and closing one was half of a gated read's time: asyncpg connect ≈ 4 ms,
close ≈ 2 ms). The provider's PgBouncer still pools across instances, so asyncpg's
prepared-statement cache stays off (it breaks under transaction pooling). A connection that sat
idle longer than `DB_POOL_IDLE_CHECK_SECONDS` (a frozen instance, a server that closed it) is
checked with one round trip before use and replaced if dead, so it never surfaces as a 500; a
busy instance pays nothing. Read-only routes (`read_only`) run without BEGIN/COMMIT round trips.
A session opens a connection only when it first runs a query, so a request served from the key
cache never touches the database. SQLite (the embedded default) pools its connections too:
opening one costs a thread (aiosqlite) and its pragmas, about 4 ms.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry, NullPool

from app.core.config import Settings

AFTER_COMMIT = "after_commit"


def after_commit(session: AsyncSession, callback: Callable[[], Awaitable[None]]) -> None:
    """Run `callback` once the request's unit of work has committed (e.g. publish to Redis)."""
    session.info.setdefault(AFTER_COMMIT, []).append(callback)


class CommitHook(Protocol):
    """Work around each writing unit's COMMIT (e.g. announcing what it changed, in Redis)."""

    async def before_commit(self, session: AsyncSession) -> None:
        """Right before COMMIT; raising aborts the unit (it rolls back)."""

    async def after_end(self, session: AsyncSession, *, committed: bool) -> None:
        """Once the unit has committed or rolled back (never raises)."""


def upsert_insert(session: AsyncSession, table: sa.Table) -> Any:
    """An INSERT with `on_conflict_do_*` for the session's dialect (PostgreSQL or SQLite)."""
    dialect = session.bind.dialect.name if session.bind else "postgresql"
    if dialect == "sqlite":
        # imported here: a PostgreSQL deployment never loads SQLite's dialect (cold start)
        from sqlalchemy.dialects import sqlite

        return sqlite.insert(table)
    return postgresql.insert(table)


class QueryCounter:
    """Counts statements sent to the database (benchmarks and tests assert on it)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, *_: Any) -> None:
        self.count += 1


class Database:
    """One engine and session factory per app instance (built lazily, never at import time)."""

    def __init__(self, settings: Settings) -> None:
        pool: dict[str, Any]
        connect_args: dict[str, Any] = {}
        size = min(settings.DB_POOL_SIZE, settings.DB_MAX_CONNECTIONS)
        pool = {
            "pool_size": size,
            "max_overflow": settings.DB_MAX_CONNECTIONS - size,
            "pool_recycle": settings.DB_POOL_MAX_AGE_SECONDS,
            "pool_timeout": 10,
        }
        if size == 0:  # none kept (SQLAlchemy's pool_size=0 would mean "no limit")
            pool = {"poolclass": NullPool}
        if settings.is_sqlite:
            # pooled too: opening a SQLite file costs a thread (aiosqlite) and the pragmas, about
            # 4 ms per request (bench/RESULTS.md, search)
            connect_args["timeout"] = 15
        else:
            connect_args.update(statement_cache_size=0, prepared_statement_cache_size=0)
        # hide_parameters: bound values (emails, key hashes) never reach exception text or logs.
        self.engine: AsyncEngine = create_async_engine(
            settings.DATABASE_URL, connect_args=connect_args, hide_parameters=True, **pool
        )
        if settings.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        else:
            _check_idle_connections(self.engine, settings.DB_POOL_IDLE_CHECK_SECONDS)
        self.queries = QueryCounter()
        event.listen(self.engine.sync_engine, "before_cursor_execute", self.queries)
        self.connects = QueryCounter()  # new database connections (benchmarks, tests)
        event.listen(self.engine.sync_engine, "connect", self.connects)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        # Read-only units: no BEGIN/COMMIT (PostgreSQL; SQLite transactions cost no round trip).
        reader = self.engine
        if not settings.is_sqlite:
            reader = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self.reader = async_sessionmaker(reader, expire_on_commit=False)
        # A cap on units at once: one instance serving many requests (Vercel Fluid compute) waits
        # here rather than queueing inside the pool while holding other resources.
        self._permits = asyncio.Semaphore(settings.DB_MAX_CONNECTIONS)
        self.hooks: list[CommitHook] = []  # app/services.py adds the product versions'

    @asynccontextmanager
    async def unit(self, *, read_only: bool = False) -> AsyncIterator[AsyncSession]:
        """A unit of work: commit on success, roll back on any exception, then run the
        after-commit callbacks. A context manager (not a generator driven by `async for`), so the
        session is closed and its connection returned the moment the block ends, also when it
        raises — never later, when the garbage collector finalises an abandoned generator.

        `read_only`: every statement commits on its own (PostgreSQL autocommit), saving the
        BEGIN and COMMIT round trips; only for units that write nothing and need no snapshot
        across statements."""
        factory = self.reader if read_only else self.sessionmaker
        async with self._permits:
            session = factory()
            try:
                try:
                    yield session
                    if session.in_transaction() and not read_only:  # autocommit: nothing to send
                        for hook in self.hooks:
                            await hook.before_commit(session)
                        await session.commit()
                except BaseException:
                    if session.in_transaction():
                        await session.rollback()
                    for hook in self.hooks:
                        await hook.after_end(session, committed=False)
                    raise
                for hook in self.hooks:
                    await hook.after_end(session, committed=True)
                for callback in session.info.pop(AFTER_COMMIT, []):
                    await callback()
            finally:
                # A unit that never began a transaction (a hot read: key and product both
                # current in this instance) holds no connection and no objects: closing it
                # would only cost event-loop turns (~0.15 ms), so it is simply dropped.
                if session.in_transaction() or session.identity_map:
                    await session.close()

    async def dispose(self) -> None:
        await self.engine.dispose()


IDLE_SINCE = "idle_since"


def _check_idle_connections(engine: AsyncEngine, idle_seconds: float) -> None:
    """Check a pooled connection that sat idle too long before handing it out; a dead one is
    replaced (the pool retries on DisconnectionError), so it never fails a request."""

    def checkin(_: Any, record: ConnectionPoolEntry) -> None:
        record.info[IDLE_SINCE] = time.monotonic()

    def checkout(dbapi_connection: Any, record: ConnectionPoolEntry, _: Any) -> None:
        since = record.info.pop(IDLE_SINCE, None)
        if since is None or time.monotonic() - since <= idle_seconds:
            return
        try:  # the driver's own ping (inside SQLAlchemy's greenlet): one round trip, no BEGIN
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise DisconnectionError("idle pooled connection is gone") from exc

    event.listen(engine.sync_engine, "checkin", checkin)
    event.listen(engine.sync_engine, "checkout", checkout)


def _sqlite_pragmas(dbapi_connection: Any, _: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()
    # SQLite's `lower` only folds ASCII; search filters need `Éclat` = `éclat` (queries only:
    # never in a trigger, index or generated column, so other tools can still write the file).
    dbapi_connection.create_function("am_lower", 1, _lower, deterministic=True)


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value
