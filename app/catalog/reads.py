"""Product reads (REST and MCP, one SKU or a bulk of them) answered from this instance's copies
when the gate's Redis command says they are current (app/catalog/versions.py): no SQL then.

Copies are the JSON the endpoint would send. A single read matches the SKU case-insensitively and
a bulk read exactly, so each keeps its own copies (`1:<sku>`, `=<sku>`); a SKU with no product is
kept too (an empty copy), under the same rule: creating it changes its version.
"""

import json
from collections.abc import Iterable, Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from app.catalog import repository as repo
from app.catalog.cache import ProductCache
from app.catalog.service import ProductNotFound, product_public
from app.catalog.versions import ProductVersions, Seen, field_of, seen_from_reply
from app.gate.decision import GateDecision

NOT_FOUND = b""


def product_fields(skus: Iterable[str]) -> list[str]:
    """The version fields a read of these SKUs asks the gate for (each once, in order)."""
    return list(dict.fromkeys(field_of(sku) for sku in skus))


class ProductReads:
    """Reads through this instance's copies; PostgreSQL only for what is missing or changed."""

    def __init__(self, cache: ProductCache, versions: ProductVersions) -> None:
        self.cache = cache
        self.versions = versions

    async def one(self, session: AsyncSession, sku: str, decision: GateDecision | None) -> bytes:
        """The product's JSON (a SKU matched case-insensitively); ProductNotFound if none."""
        seen = _seen(decision)
        key = "1:" + sku
        version = seen.version(sku)
        body = self.cache.get(key, version) if version else None
        if body is None:
            row = await repo.get(session, sku)
            body = product_public(*row).model_dump_json().encode() if row else NOT_FOUND
            await self._keep(seen, [(sku, key, body)])
        if body == NOT_FOUND:
            raise ProductNotFound(sku=sku)
        return body

    async def many(
        self, session: AsyncSession, skus: Sequence[str], decision: GateDecision | None
    ) -> bytes:
        """`BulkResponse` JSON for these SKUs (exact matches, in the order asked)."""
        seen = _seen(decision)
        ordered = list(dict.fromkeys(skus))
        bodies: dict[str, bytes] = {}
        missing: list[str] = []
        for sku in ordered:
            version = seen.version(sku)
            body = self.cache.get("=" + sku, version) if version else None
            if body is None:
                missing.append(sku)
            else:
                bodies[sku] = body
        if missing:
            rows = await repo.get_many(session, missing)
            found = {p.sku: product_public(p, s).model_dump_json().encode() for p, s in rows}
            read = [(sku, "=" + sku, found.get(sku, NOT_FOUND)) for sku in missing]
            bodies.update((sku, body) for sku, _, body in read)
            await self._keep(seen, read)
        data = b",".join(bodies[sku] for sku in ordered if bodies[sku] != NOT_FOUND)
        not_found = [sku for sku in ordered if bodies[sku] == NOT_FOUND]
        return b'{"data":[%s],"not_found":%s}' % (data, json.dumps(not_found).encode())

    async def _keep(self, seen: Seen, read: Sequence[tuple[str, str, bytes]]) -> None:
        """Keep what was just read from PostgreSQL: under the version seen before the read, or
        under a version this reader seeds (one Redis command for all of them) where the field had
        none or an expired mark. A field a writer is marking is not kept."""
        if not self.cache.enabled:
            return
        repair: dict[str, str] = {}  # field -> value seen
        for sku, key, body in read:
            version = seen.version(sku)
            if version is not None:
                self.cache.put(key, version, body)
                continue
            repairable, value = seen.repairable(sku)
            if repairable:
                repair[field_of(sku)] = value
        if not repair:
            return
        seeded = await self.versions.seed(seen, list(repair.items()))
        for sku, key, body in read:
            version = seeded.get(field_of(sku))
            if version is not None:
                self.cache.put(key, version, body)


def _seen(decision: GateDecision | None) -> Seen:
    if decision is None or decision.degraded or not decision.product_reply:
        return Seen()
    return seen_from_reply(decision.product_reply, decision.now_ms, decision.product_fields)
