"""Catalog endpoints (data plane: keyed, gated, metered)."""

from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import StringConstraints, TypeAdapter, ValidationError, WithJsonSchema

from app.catalog.cursor import MAX_CURSOR_LENGTH, CursorCodec
from app.catalog.reads import product_fields
from app.catalog.schemas import (
    SKU_PATTERN,
    BulkRequest,
    BulkResponse,
    ProductPublic,
)
from app.catalog.search import service as search_service
from app.catalog.search.schemas import (
    MAX_ATTRIBUTE_FILTERS,
    MAX_FILTER_VALUES,
    MAX_PRICE_CENTS,
    CategoryList,
    ProductListing,
    SearchRequest,
    SearchResponse,
    Sort,
)
from app.catalog.search.service import Search, attribute_expression
from app.core.errors import error_responses
from app.core.features import BULK_SKUS_PER_UNIT, cost_per
from app.core.routing import Router
from app.core.schemas import CleanStr
from app.deps import (
    ApiKeyHeader,
    SearchEngineDep,
    SessionDep,
    SettingsDep,
    admit,
    gate,
    services_of,
)
from app.gate.decision import GateDecision

SearchText = Annotated[CleanStr, StringConstraints(min_length=1, max_length=200)]
# The syntax `attribute_expression` reads, for the document (it checks it, with its own message).
AttrExpression = Annotated[
    str,
    WithJsonSchema({"type": "string", "pattern": r"^\s*[A-Za-z0-9_]{1,40}\s*(>=|<=|>|<|=|:)\s*\S"}),
]

router = Router(
    prefix="/v1/products",
    tags=["catalog"],
    responses=error_responses(400, 401, 402, 403, 404, 413, 422, 429, 503),
)

categories_router = Router(
    prefix="/v1/categories",
    tags=["catalog"],
    responses=error_responses(401, 402, 403, 429, 503),
)

ReadGate = Annotated[GateDecision, Depends(gate("catalog.read", "products.list"))]
SearchGate = Annotated[GateDecision, Depends(gate("catalog.read", "products.search"))]
CategoriesGate = Annotated[GateDecision, Depends(gate("catalog.read", "categories.list"))]
SkuParam = Annotated[str, Path(pattern=SKU_PATTERN)]

# `GET /v1/products/{sku}` reads its two parameters itself: FastAPI's per-request parameter
# solving was a quarter of this hot read's own path (docs/architecture.md#hot-product-reads).
# The same validation (`SkuParam` itself, the same 422) and the same OpenAPI parameters,
# which tests/catalog/test_product_params.py compares with what FastAPI builds from
# `sku: SkuParam, x_api_key: ApiKeyHeader`.
_SKU = TypeAdapter(SkuParam)
PRODUCT_PARAMETERS: list[dict[str, Any]] = [
    {
        "name": "sku",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": SKU_PATTERN, "title": "Sku"},
    },
    {
        "name": "X-API-Key",
        "in": "header",
        "required": False,
        "schema": {
            "anyOf": [{"type": "string"}, {"type": "null"}],
            "description": "Your AgentMall API key.",
            "title": "X-Api-Key",
        },
        "description": "Your AgentMall API key.",
    },
]


def path_sku(request: Request) -> str:
    """The `sku` path parameter, validated as `SkuParam` is (a 422 naming `sku` otherwise)."""
    try:
        return _SKU.validate_python(request.path_params["sku"])
    except ValidationError as exc:
        errors = [{**err, "loc": ("path", "sku", *err["loc"])} for err in exc.errors()]
        raise RequestValidationError(errors) from None


def bulk_cost(body: BulkRequest) -> int:
    """1 unit per 10 SKUs, rounded up."""
    return cost_per(BULK_SKUS_PER_UNIT, len(body.skus))


CursorParam = Annotated[
    str | None,
    Query(
        min_length=1,
        description=f"`next_cursor` of the previous page (at most {MAX_CURSOR_LENGTH} characters;"
        " any other value is a 400 `invalid_cursor`).",
    ),
]
ListParam = Annotated[list[str], Query(max_length=MAX_FILTER_VALUES)]


def _search_request(**fields: Any) -> SearchRequest:
    """A `SearchRequest` from query parameters; a bad one is a 422 naming the parameter."""
    try:
        return SearchRequest.model_validate(fields)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("query", *_query_loc(e["loc"]))} for e in exc.errors()]
        ) from exc


_PARAMS = {"categories": "category", "brands": "brand", "attributes": "attr", "query": "q"}


def _query_loc(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """The query parameter a `SearchRequest` error location came from."""
    parts = [p for p in loc if isinstance(p, str) and p not in ("filters", "pagination")]
    if parts[:1] == ["price"]:
        return ("price_max",) if parts[1:2] == ["max"] else ("price_min",)
    return (_PARAMS.get(parts[0], parts[0]),) if parts else ("q",)


@router.get("", response_model=ProductListing)
async def list_products(
    session: SessionDep,
    settings: SettingsDep,
    engine: SearchEngineDep,
    _: ReadGate,
    q: Annotated[SearchText | None, Query(description="Ranked full-text search.")] = None,
    category: Annotated[
        list[str], Query(max_length=MAX_FILTER_VALUES, description="Slug or name.")
    ] = [],  # noqa: B006 - FastAPI copies defaults
    brand: ListParam = [],  # noqa: B006
    price_min: Annotated[int | None, Query(ge=0, le=MAX_PRICE_CENTS)] = None,
    price_max: Annotated[int | None, Query(ge=0, le=MAX_PRICE_CENTS)] = None,
    in_stock: bool | None = None,
    attr: Annotated[
        list[AttrExpression],
        Query(
            max_length=MAX_ATTRIBUTE_FILTERS,
            description="Attribute filters: `size=10`, `ram_gb>=16`, `weight_kg<2`.",
        ),
    ] = [],  # noqa: B006
    sort: Sort | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: CursorParam = None,
) -> ProductListing:
    """Search the catalog: relevance-ranked with `q` (see `POST /v1/products/search`), else by
    SKU; filters by category, brand, price (cents), stock and attributes."""
    attributes = []
    for index, expression in enumerate(attr):
        try:
            attributes.append(attribute_expression(expression))
        except ValueError as exc:
            raise RequestValidationError(
                [{"loc": ("query", "attr"), "msg": f"attr[{index}]: {exc}", "type": "value_error"}]
            ) from exc
    request = _search_request(
        query=q,
        filters={
            "categories": category,
            "brands": brand,
            "price": {"min": price_min, "max": price_max},
            "in_stock": in_stock,
            "attributes": attributes,
        },
        sort=sort,
        pagination={"cursor": cursor, "limit": limit},
    )
    result = await Search(engine, session, CursorCodec(settings.cursor_key)).run(request)
    return ProductListing(
        data=[
            ProductPublic(**p.model_dump(exclude={"score", "brand", "matched_words"}))
            for p in result.products
        ],
        next_cursor=result.pagination.cursor,
        interpreted=result.interpreted,
    )


@router.post("/search", response_model=SearchResponse)
async def search_products(
    session: SessionDep,
    settings: SettingsDep,
    engine: SearchEngineDep,
    body: SearchRequest,
    _: SearchGate,
) -> SearchResponse:
    """Ranked, typo-tolerant product search (UCP `search_catalog` shape).

    `query` uses web-search syntax: words in any order must all match, `"a phrase"`, `or`,
    `-excluded`; the last word also matches as a prefix; accents and plurals don't matter; an
    exact SKU or GTIN/ISBN ranks first. `filters`: categories (slug or name), brands, price
    (cents, inclusive), in_stock, attributes (`eq`, `gt`, `gte`, `lt`, `lte`). `sort`: relevance
    (default with a query), price_asc, price_desc, newest, sku. `facets: true` adds counts per
    category, brand and price band. `messages` carries spelling suggestions (`did_you_mean`) and
    says when the query was corrected or relaxed. Relevance pages stop after the first
    1,000 results; `total_count` is exact up to 1,000 (`total_count_capped` beyond).

    Constraints written in the query are read (docs/search.md): prices (`under $1500`,
    `$50-100`), price intent (`cheap`, `premium`), numbers with a unit or an attribute name
    (`size 10`, `16gb`, `27 inch`), boolean attributes (`wireless`), values the catalog has
    (`red`, `earbuds`) and categories (`laptops`); filler words (`show me`, `do you have`) are
    ignored. `interpreted` says how: the text words, the filters and boosts read (an explicit
    filter always wins), spelling corrections, and `match` (`relaxed`: no product matched every
    word; each product's `matched_words` then lists the words it matched).
    """
    return await Search(engine, session, CursorCodec(settings.cursor_key)).run(body)


# The two product reads are the hot path (docs/architecture.md#hot-product-reads): no dependency
# tree. Their handlers admit the request themselves (`admit`, the gate dependency's body) once
# FastAPI has validated the parameters, in a read-only unit of work that sends no statement when
# the key and the product are both current in this instance.


async def _read_products(
    request: Request,
    x_api_key: str | None,
    skus: list[str],
    *,
    bulk: bool,
    feature: str,
    endpoint: str,
    cost: int = 1,
) -> Response:
    """Admit, then answer from this instance's copies while Redis says they are current."""
    services = services_of(request)
    reads = services.product_reads
    async with services.db.unit(read_only=True) as session:
        decision = await admit(
            request,
            services,
            session,
            x_api_key,
            feature=feature,
            endpoint=endpoint,
            cost=cost,
            products=product_fields(skus),
        )
        if bulk:
            body = await reads.many(session, skus, decision)
        else:
            body = await reads.one(session, skus[0], decision)
    return Response(body, media_type="application/json")


@router.post("/bulk", response_model=BulkResponse)
async def bulk_products(
    request: Request, body: BulkRequest, x_api_key: ApiKeyHeader = None
) -> Response:
    """Up to 100 products in one call (paid plans); costs 1 unit per 10 SKUs."""
    return await _read_products(
        request,
        x_api_key,
        body.skus,
        bulk=True,
        feature="catalog.bulk",
        endpoint="products.bulk",
        cost=bulk_cost(body),
    )


@categories_router.get("", response_model=CategoryList)
async def list_categories(
    session: SessionDep, engine: SearchEngineDep, _: CategoriesGate
) -> CategoryList:
    """Every category with its slug (use it in filters), display name and product count."""
    return await search_service.list_categories(engine, session)


@router.get(
    "/{sku}", response_model=ProductPublic, openapi_extra={"parameters": PRODUCT_PARAMETERS}
)
async def get_product(request: Request) -> Response:
    """One product with price, attributes and current stock."""
    return await _read_products(
        request,
        request.headers.get("x-api-key"),
        [path_sku(request)],
        bulk=False,
        feature="catalog.read",
        endpoint="products.get",
    )
