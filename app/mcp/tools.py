"""The MCP tools: few, coarse, described for a model; each a thin call into a catalog service.

| tool | REST twin | feature | cost |
|---|---|---|---|
| `search_catalog` | `POST /v1/products/search` | catalog.read | 1 |
| `lookup_catalog`, 1 SKU | `GET /v1/products/{sku}` | catalog.read | 1 |
| `lookup_catalog`, 2–100 SKUs | `POST /v1/products/bulk` | catalog.bulk | 1 per 10 SKUs |
| `list_categories` | `GET /v1/categories` | catalog.read | 1 |
| `get_usage` | `GET /v1/usage` | (control plane) | free, never counted |

Usage shows the calls under `mcp:<tool>` (`mcp:search_catalog`, ...), beside the REST endpoints.
Return types are the REST response models, so clients get an `outputSchema` and
`structuredContent`; money is integer minor units (`price_cents`) plus a 3-letter `currency`.
"""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp_types import ToolAnnotations
from pydantic import Field

from app.catalog.cursor import CursorCodec
from app.catalog.reads import product_fields
from app.catalog.schemas import BulkResponse, ProductPublic, Sku
from app.catalog.search import service as search_service
from app.catalog.search.schemas import (
    CategoryList,
    PaginationIn,
    QueryText,
    SearchFilters,
    SearchRequest,
    SearchResponse,
    Sort,
)
from app.catalog.search.service import Search
from app.core.features import BULK_SKUS_PER_UNIT, MAX_BULK_SKUS, cost_per
from app.mcp.metering import control_plane, metered
from app.usage import service as usage_service
from app.usage.schemas import UsagePublic

VERSION = "1.0.0"
INSTRUCTIONS = """\
AgentMall is a product catalog for agents: search products, read prices and live stock.
Prices are integer minor units (price_cents: 1999 = 19.99) with a 3-letter currency.
Typical flow: search_catalog (or list_categories for the slugs to filter by), then lookup_catalog
for the current price and stock of the SKUs you chose. Every call except get_usage counts against
your key's monthly quota and per-minute limit, shared with the REST API. A refused call is a
JSON-RPC error (code -32003) that says what to do: where the API key goes, the upgrade link and
when the quota resets, or how many seconds to wait."""


async def search_catalog(
    ctx: Context[Any],
    query: Annotated[
        QueryText | None,
        Field(
            description="What you are looking for, in words: constraints written in the query "
            "are read (`under $50`, `between $100 and $200`, `cheap`, `premium`, `size 10`, "
            "`16gb`, `32 GB RAM`, `27 inch`, `wireless`, colours, brands; filler such as "
            "`show me` or `do you have` is ignored) and reported in `interpreted`. Web-search "
            'syntax: words must all match in any order; "a phrase", `or`, `-excluded`. Omit to '
            "browse by filters only."
        ),
    ] = None,
    filters: Annotated[
        SearchFilters | None,
        Field(
            description="Narrow the results exactly: categories (slug or name, see "
            "list_categories), brands, price {min, max} in minor units (cents, inclusive), "
            'in_stock, attributes [{"name": "ram_gb", "op": "gte", "value": 16}] with op eq, gt, '
            "gte, lt or lte (attribute names as the products' `attributes` show them). A filter "
            "given here always wins over the same constraint read from the query's words."
        ),
    ] = None,
    sort: Annotated[
        Sort | None,
        Field(description="Default: relevance with a query, sku without one."),
    ] = None,
    pagination: Annotated[
        PaginationIn | None,
        Field(
            description="limit: 1-100 (default 20); cursor: pagination.cursor of the previous "
            "page, to continue the same search."
        ),
    ] = None,
    facets: Annotated[
        bool, Field(description="Also count the matches per category, brand and price band.")
    ] = False,
) -> SearchResponse:
    """Search the product catalog: ranked, typo-tolerant, with filters, sorting and paging.

    Write the request as you would say it ("cheap wireless earbuds", "gaming laptop under $1500",
    "running shoes size 10"): prices, sizes, capacities and other attribute values in the words
    become filters or rank matching products first, and `interpreted` says how the query was
    read: `text` (the words matched), `filters` (each with the words it came from and whether it
    was `applied`), `boosts` (price intent, categories, exact values), `ignored` filler words,
    spelling `corrections`, and `match`: `all`, `corrected`, or `relaxed` when no product
    matched every word — then each product's `matched_words` lists the words it matched, so you
    can drop weak results. Check `interpreted` and correct with explicit `filters` when a
    constraint was read wrongly or not at all.

    Returns products (SKU, name, brand, category, price in minor units with currency,
    attributes, live stock, relevance score), pagination (cursor, has_next_page, total_count),
    messages (did_you_mean, corrected_query, relaxed_match, conditions_dropped) and
    `interpreted`. Accents and plurals don't matter; the last word also matches as a prefix; an
    exact SKU or GTIN ranks first. Costs 1 call of the monthly quota.
    """
    request = SearchRequest(
        query=query,
        filters=filters or SearchFilters(),
        sort=sort,
        facets=facets,
        pagination=pagination or PaginationIn(),
    )
    async with metered(ctx, feature="catalog.read", endpoint="mcp:search_catalog") as call:
        codec = CursorCodec(call.services.settings.cursor_key)
        return await Search(call.services.search, call.session, codec).run(request)


async def lookup_catalog(
    ctx: Context[Any],
    skus: Annotated[
        list[Sku],
        Field(
            min_length=1,
            max_length=MAX_BULK_SKUS,
            description="The SKUs to read (as search_catalog returns them). One SKU works on "
            "every plan; 2-100 in one call need a paid plan.",
        ),
    ],
) -> BulkResponse:
    """Current price (minor units with currency), attributes and live stock of products by SKU.

    One SKU: every plan, 1 call; an unknown SKU is an error and is not counted. Two to 100 SKUs:
    paid plans only (catalog.bulk), 1 call per 10 SKUs rounded up; unknown SKUs are listed in
    not_found, in the order asked.
    """
    endpoint = "mcp:lookup_catalog"
    fields = product_fields(skus)  # read by the gate's command, as REST does (app/catalog/reads.py)
    if len(skus) == 1:  # `GET /v1/products/{sku}`
        async with metered(
            ctx, feature="catalog.read", endpoint=endpoint, read_only=True, products=fields
        ) as call:
            body = await call.services.product_reads.one(call.session, skus[0], call.decision)
        return BulkResponse(data=[ProductPublic.model_validate_json(body)], not_found=[])
    cost = cost_per(BULK_SKUS_PER_UNIT, len(skus))  # `POST /v1/products/bulk`
    async with metered(
        ctx, feature="catalog.bulk", endpoint=endpoint, cost=cost, read_only=True, products=fields
    ) as call:
        body = await call.services.product_reads.many(call.session, skus, call.decision)
        return BulkResponse.model_validate_json(body)


async def list_categories(ctx: Context[Any]) -> CategoryList:
    """Every category with its slug (use it in search_catalog filters), display name and
    product count. Costs 1 call of the monthly quota."""
    async with metered(ctx, feature="catalog.read", endpoint="mcp:list_categories") as call:
        return await search_service.list_categories(call.services.search, call.session)


async def get_usage(ctx: Context[Any]) -> UsagePublic:
    """Your key's usage this period: plan, calls used, quota, remaining, per-minute limit,
    period start and end, per endpoint (REST and MCP tools share one quota) and per day.
    Free: never counted, and it answers even when the quota is used up."""
    async with control_plane(ctx) as (call, principal):
        return await usage_service.usage_view(
            call.session,
            call.services.redis,
            call.services.keys,
            account=principal.account,
            plan=principal.plan,
        )


TOOLS = (
    (search_catalog, "Search products"),
    (lookup_catalog, "Look up products by SKU"),
    (list_categories, "List categories"),
    (get_usage, "Your usage and quota"),
)


def build_server() -> MCPServer:
    """The MCP server with AgentMall's tools (no transport: see `app.mcp.transport`)."""
    server: MCPServer = MCPServer(
        "agentmall",
        title="AgentMall",
        version=VERSION,
        instructions=INSTRUCTIONS,
        log_level="WARNING",  # the SDK calls logging.basicConfig: keep the root at its default
    )
    for tool, title in TOOLS:
        hints = ToolAnnotations(title=title, read_only_hint=True, open_world_hint=False)
        server.add_tool(tool, title=title, annotations=hints)
    return server
