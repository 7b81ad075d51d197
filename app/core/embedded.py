"""The embedded default migrates itself: a SQLite database is brought to head at start-up.

So any launcher works from a fresh clone with no settings (`uvicorn api.index:app`, `fastapi dev`,
Vercel's runtime), not only `scripts/dev.sh`. PostgreSQL is never migrated here: the founder runs
`alembic upgrade head` before deploying (README).

Alembic is located from this package, never from the current directory. Upgrading a database that
is already at head does nothing, and processes starting at once on the same file take turns under
a file lock (POSIX; elsewhere a failed attempt is retried once, as the winner has reached head).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url

from app.core.config import Settings

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

ROOT = Path(__file__).resolve().parents[2]
ALEMBIC_INI = ROOT / "alembic.ini"
LOCK_TIMEOUT_SECONDS = 120.0

logger = logging.getLogger("agentmall")


async def migrate_embedded_database(settings: Settings) -> bool:
    """Upgrade a SQLite `DATABASE_URL` to head (a no-op if it is there); False if not SQLite."""
    if not settings.is_sqlite:
        return False
    database = make_url(settings.DATABASE_URL).database
    if not database or database == ":memory:":
        return False  # every connection would get its own empty in-memory database
    path = Path(database).resolve()
    await asyncio.to_thread(_upgrade, settings.DATABASE_URL, path)
    return True


def _upgrade(url: str, path: Path) -> None:
    config = Config(str(ALEMBIC_INI))
    config.set_main_option("prepend_sys_path", "")  # the app is importable; don't touch sys.path
    config.attributes["database_url"] = url
    config.attributes["configure_logger"] = False
    started = time.perf_counter()
    with _lock(path):
        try:
            command.upgrade(config, "head")
        except Exception:
            if fcntl is not None:
                raise
            command.upgrade(config, "head")  # another process won the race: now at head
    logger.info("embedded database %s at head (%.2fs)", path, time.perf_counter() - started)


@contextmanager
def _lock(path: Path) -> Iterator[None]:
    """An exclusive lock per database file. The lock file lives in the temp directory (never beside
    the database) and is removed on release; a waiter that wakes on a removed one tries again."""
    if fcntl is None:  # pragma: no cover - Windows
        yield
        return
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:16]
    lock_path = Path(tempfile.gettempdir()) / f"agentmall-migrate-{digest}.lock"
    deadline = time.monotonic() + LOCK_TIMEOUT_SECONDS
    while True:
        handle = open(lock_path, "a")  # noqa: SIM115 - closed below, after the unlink
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    handle.close()
                    raise TimeoutError(f"another process is still migrating {path}") from None
                time.sleep(0.05)
        try:
            if os.path.samestat(os.fstat(handle.fileno()), os.stat(lock_path)):
                break  # the live lock file, not one its last holder removed
        except FileNotFoundError:
            pass
        handle.close()
    try:
        yield
    finally:
        with suppress(OSError):
            os.unlink(lock_path)
        handle.close()
