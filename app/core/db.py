"""Database engine and the request-scoped session.

Serverless rules (NOTES.md): Postgres connections are scarce and instances are many, so there is no
pool per instance (`NullPool`; the provider's PgBouncer pools) and asyncpg's prepared-statement
cache is off (it breaks under transaction pooling). A session opens a connection only when it first
runs a query, so a request served from the key cache never touches the database.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool

from app.core.config import Settings

AFTER_COMMIT = "after_commit"


def after_commit(session: AsyncSession, callback: Callable[[], Awaitable[None]]) -> None:
    """Run `callback` once the request's unit of work has committed (e.g. publish to Redis)."""
    session.info.setdefault(AFTER_COMMIT, []).append(callback)


def upsert_insert(session: AsyncSession, table: sa.Table) -> Any:
    """An INSERT with `on_conflict_do_*` for the session's dialect (PostgreSQL or SQLite)."""
    dialect = session.bind.dialect.name if session.bind else "postgresql"
    return (sqlite.insert if dialect == "sqlite" else postgresql.insert)(table)


class QueryCounter:
    """Counts statements sent to the database (benchmarks and tests assert on it)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, *_: Any) -> None:
        self.count += 1


class Database:
    """One engine and session factory per app instance (built lazily, never at import time)."""

    def __init__(self, settings: Settings) -> None:
        connect_args: dict[str, Any] = {}
        if settings.is_sqlite:
            connect_args["timeout"] = 15
        else:
            connect_args.update(statement_cache_size=0, prepared_statement_cache_size=0)
        # hide_parameters: bound values (emails, key hashes) never reach exception text or logs.
        self.engine: AsyncEngine = create_async_engine(
            settings.DATABASE_URL,
            poolclass=NullPool,
            connect_args=connect_args,
            hide_parameters=True,
        )
        if settings.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.queries = QueryCounter()
        event.listen(self.engine.sync_engine, "before_cursor_execute", self.queries)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        # No pool, but a cap: one instance serving many requests at once (Vercel Fluid compute)
        # must not open a connection per request and exhaust the database.
        self._permits = asyncio.Semaphore(settings.DB_MAX_CONNECTIONS)

    @asynccontextmanager
    async def unit(self) -> AsyncIterator[AsyncSession]:
        """A unit of work: commit on success, roll back on any exception, then run the
        after-commit callbacks. A context manager (not a generator driven by `async for`), so the
        session is closed and its connection slot freed the moment the block ends, also when it
        raises — never later, when the garbage collector finalises an abandoned generator."""
        async with self._permits, self.sessionmaker() as session:
            try:
                yield session
                if session.in_transaction():
                    await session.commit()
            except BaseException:
                await session.rollback()
                raise
            for callback in session.info.pop(AFTER_COMMIT, []):
                await callback()

    async def dispose(self) -> None:
        await self.engine.dispose()


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
