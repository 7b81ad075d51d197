"""`python -m app.catalog.search rebuild-words`: recount the spelling word list from the products.

The upsert path (admin API, importer) keeps the list current; run this after loading products
some other way (COPY, a restore).
"""

from __future__ import annotations

import argparse
import asyncio

from app.catalog.search.service import rebuild_vocabulary
from app.core.config import get_settings
from app.core.db import Database


async def _rebuild() -> int:
    db = Database(get_settings())
    try:
        async with db.unit() as session:
            return await rebuild_vocabulary(session)
    finally:
        await db.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.catalog.search")
    parser.add_argument("command", choices=["rebuild-words"])
    parser.parse_args(argv)
    words = asyncio.run(_rebuild())
    print(f"search word list rebuilt: {words:,} words")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
