"""A small stateful Stripe for tests, played through respx (no server, no network).

`FakeStripe` keeps products, prices and meters in dicts (tests may seed or read them directly),
answers the endpoints the billing code uses with objects shaped from `stripe_objects`, and errors in
Stripe's own shape (`{"error": {"type", "code", "message", "param"}}`). Every request is recorded in
`requests` (method, path, decoded params). Usage:

    fake = FakeStripe()
    fake.install(respx_mock, "https://stripe.test")   # settings: STRIPE_API_BASE=https://stripe.test
    fake.fail("POST", r"/v1/billing/meters", status=500, times=1)
    fake.route("POST", r"/v1/customers", lambda req: fake.json(stripe_objects.customer()))

`route()` adds or overrides an endpoint (the newest route wins); a request no route matches gets
Stripe's 404 "Unrecognized request URL", so a test notices a call it did not expect.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import respx

from tests.support import stripe_objects

Obj = dict[str, Any]
Handler = Callable[["FakeRequest"], httpx.Response]


@dataclass
class FakeRequest:
    """One request as the fake saw it: `params` are the decoded query (GET) or form body."""

    method: str
    path: str
    params: Obj
    headers: httpx.Headers
    match: dict[str, str] = field(default_factory=dict)  # the route pattern's named groups


def decode_form(pairs: Iterable[tuple[str, str]]) -> Obj:
    """Stripe's bracket encoding (`a[b][0]=x`) back into nested dicts and lists."""
    root: Obj = {}
    for key, value in pairs:
        parts = re.findall(r"[^\[\]]+", key)
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return _lists(root)


def _lists(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    if node and all(k.isdigit() for k in node):
        return [_lists(node[k]) for k in sorted(node, key=int)]
    return {k: _lists(v) for k, v in node.items()}


def as_bool(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


class FakeStripe:
    """Products, prices and Billing Meters, stateful, behind respx."""

    def __init__(self) -> None:
        self.products: dict[str, Obj] = {}
        self.prices: dict[str, Obj] = {}
        self.meters: dict[str, Obj] = {}
        self.requests: list[FakeRequest] = []
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self._default_routes()

    # -- wiring -------------------------------------------------------------------------------

    def install(self, respx_mock: respx.MockRouter, base_url: str) -> respx.Route:
        """Answer every request to `base_url`'s host."""
        parts = urlsplit(base_url)
        return respx_mock.route(scheme=parts.scheme, host=parts.hostname).mock(
            side_effect=self._dispatch
        )

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        """Add (or override) an endpoint; `pattern` is a regex on the path, fully matched."""
        self._routes.insert(0, (method.upper(), re.compile(pattern), handler))

    def fail(
        self,
        method: str,
        pattern: str,
        *,
        status: int = 500,
        message: str = "An unknown error occurred",
        times: int | None = None,
    ) -> None:
        """Make an endpoint answer a Stripe error (`times` times, else always); no retry asked."""
        remaining = [times]

        def handler(request: FakeRequest) -> httpx.Response:
            if remaining[0] is not None:
                if remaining[0] <= 0:
                    return self._dispatch_from(request, skip=handler)
                remaining[0] -= 1
            kind = "api_error" if status >= 500 else "invalid_request_error"
            response = self.error(status, message, type_=kind)
            response.headers["Stripe-Should-Retry"] = "false"
            return response

        self.route(method, pattern, handler)

    def posts(self, pattern: str = r".*") -> list[FakeRequest]:
        """The POSTs made so far whose path fully matches `pattern`."""
        regex = re.compile(pattern)
        return [r for r in self.requests if r.method == "POST" and regex.fullmatch(r.path)]

    # -- responses ----------------------------------------------------------------------------

    @staticmethod
    def json(body: Obj, status: int = 200) -> httpx.Response:
        return httpx.Response(status, json=body, headers={"Request-Id": "req_fake"})

    @classmethod
    def error(
        cls,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
    ) -> httpx.Response:
        """An error in Stripe's shape."""
        body: Obj = {"type": type_, "message": message}
        if code:
            body["code"] = code
        if param:
            body["param"] = param
        return cls.json({"error": body}, status)

    def missing(self, kind: str, object_id: str, param: str | None = None) -> httpx.Response:
        return self.error(
            404, f"No such {kind}: '{object_id}'", code="resource_missing", param=param or "id"
        )

    @staticmethod
    def listing(items: list[Obj], url: str, params: Obj) -> Obj:
        """A page of `items` (newest first, as Stripe lists) honouring limit/starting_after."""
        ordered = list(reversed(items))  # the stores keep creation order
        after = params.get("starting_after")
        if after:
            ids = [o["id"] for o in ordered]
            ordered = ordered[ids.index(after) + 1 :] if after in ids else []
        limit = int(params.get("limit", 10))
        return stripe_objects.listing(ordered[:limit], url, has_more=len(ordered) > limit)

    # -- dispatch -----------------------------------------------------------------------------

    def _dispatch(self, request: httpx.Request) -> httpx.Response:
        source = request.url.query.decode() if request.method == "GET" else request.content.decode()
        params = decode_form(parse_qsl(source, keep_blank_values=True))
        seen = FakeRequest(request.method, request.url.path, params, request.headers)
        self.requests.append(seen)
        return self._dispatch_from(seen)

    def _dispatch_from(self, request: FakeRequest, skip: Handler | None = None) -> httpx.Response:
        for method, pattern, handler in self._routes:
            found = pattern.fullmatch(request.path)
            if method == request.method and found and handler is not skip:
                request.match = found.groupdict()
                return handler(request)
        url = f"{request.method}: {request.path}"
        return self.error(404, f"Unrecognized request URL ({url}).")

    def _default_routes(self) -> None:
        id_ = r"(?P<id>[^/]+)"
        self.route("GET", r"/v1/products", self._list_products)
        self.route("POST", r"/v1/products", self._create_product)
        self.route("GET", rf"/v1/products/{id_}", self._get(self.products, "product"))
        self.route("POST", rf"/v1/products/{id_}", self._update_product)
        self.route("GET", r"/v1/prices", self._list_prices)
        self.route("POST", r"/v1/prices", self._create_price)
        self.route("GET", rf"/v1/prices/{id_}", self._get(self.prices, "price"))
        self.route("POST", rf"/v1/prices/{id_}", self._update_price)
        self.route("GET", r"/v1/billing/meters", self._list_meters)
        self.route("POST", r"/v1/billing/meters", self._create_meter)
        self.route("GET", rf"/v1/billing/meters/{id_}", self._get(self.meters, "billing.meter"))
        self.route("POST", rf"/v1/billing/meters/{id_}", self._update_meter)
        self.route("POST", rf"/v1/billing/meters/{id_}/deactivate", self._meter_status("inactive"))
        self.route("POST", rf"/v1/billing/meters/{id_}/reactivate", self._meter_status("active"))

    def _get(self, store: dict[str, Obj], kind: str) -> Handler:
        def handler(request: FakeRequest) -> httpx.Response:
            obj = store.get(request.match["id"])
            return self.json(obj) if obj else self.missing(kind, request.match["id"])

        return handler

    # -- products -----------------------------------------------------------------------------

    def _list_products(self, request: FakeRequest) -> httpx.Response:
        items = list(self.products.values())
        if "active" in request.params:
            items = [p for p in items if p["active"] == as_bool(request.params["active"])]
        return self.json(self.listing(items, "/v1/products", request.params))

    def _create_product(self, request: FakeRequest) -> httpx.Response:
        p = request.params
        if p.get("id") in self.products:
            return self.error(
                400, "Product already exists.", code="resource_already_exists", param="id"
            )
        overrides: Obj = {
            "name": p["name"],
            "active": as_bool(p.get("active", True)),
            "description": p.get("description"),
            "metadata": p.get("metadata", {}),
            "default_price": None,
            "package_dimensions": None,
            "type": "service",
        }
        if p.get("id"):
            overrides["id"] = p["id"]
        product = stripe_objects.product(**overrides)
        self.products[product["id"]] = product
        return self.json(product)

    def _update_product(self, request: FakeRequest) -> httpx.Response:
        product = self.products.get(request.match["id"])
        if product is None:
            return self.missing("product", request.match["id"])
        p = request.params
        for key in ("name", "description"):
            if key in p:
                product[key] = p[key]
        if "active" in p:
            product["active"] = as_bool(p["active"])
        product["metadata"].update(p.get("metadata", {}))
        return self.json(product)

    # -- prices -------------------------------------------------------------------------------

    def _list_prices(self, request: FakeRequest) -> httpx.Response:
        p, items = request.params, list(self.prices.values())
        if "active" in p:
            items = [o for o in items if o["active"] == as_bool(p["active"])]
        if "lookup_keys" in p:
            items = [o for o in items if o["lookup_key"] in p["lookup_keys"]]
        if "product" in p:
            items = [o for o in items if o["product"] == p["product"]]
        return self.json(self.listing(items, "/v1/prices", p))

    def _create_price(self, request: FakeRequest) -> httpx.Response:
        p = request.params
        if p.get("product") not in self.products:
            return self.missing("product", str(p.get("product")), param="product")
        recurring = p.get("recurring")
        if recurring is not None:
            recurring = self._price_recurring(recurring)
            if isinstance(recurring, httpx.Response):
                return recurring
        problem = self._take_lookup_key(p.get("lookup_key"), as_bool(p.get("transfer_lookup_key")))
        if problem is not None:
            return problem
        price = stripe_objects.price(
            **self._price_amounts(p),
            product=p["product"],
            currency=p["currency"].lower(),
            active=as_bool(p.get("active", True)),
            lookup_key=p.get("lookup_key"),
            nickname=p.get("nickname"),
            metadata=p.get("metadata", {}),
            recurring=recurring,
            type="recurring" if recurring else "one_time",
            billing_scheme=p.get("billing_scheme", "per_unit"),
            custom_unit_amount=None,
            transform_quantity=None,
        )
        self.prices[price["id"]] = price
        return self.json(price)

    def _price_recurring(self, recurring: Obj) -> Obj | httpx.Response:
        usage_type = recurring.get("usage_type", "licensed")
        meter = recurring.get("meter")
        if usage_type == "metered" and not meter:
            return self.error(400, "A meter is required for metered prices.", param="recurring")
        if meter and meter not in self.meters:
            return self.missing("billing.meter", meter, param="recurring[meter]")
        return {
            "interval": recurring["interval"],
            "interval_count": int(recurring.get("interval_count", 1)),
            "meter": meter,
            "usage_type": usage_type,
            "trial_period_days": None,
        }

    @staticmethod
    def _price_amounts(p: Obj) -> Obj:
        if "unit_amount" in p:
            return {"unit_amount": int(p["unit_amount"]), "unit_amount_decimal": p["unit_amount"]}
        amount = Decimal(p["unit_amount_decimal"])
        whole = amount == amount.to_integral_value()
        return {
            "unit_amount": int(amount) if whole else None,
            "unit_amount_decimal": format(amount.normalize(), "f"),
        }

    def _take_lookup_key(self, lookup_key: str | None, transfer: bool) -> httpx.Response | None:
        holder = next(
            (o for o in self.prices.values() if lookup_key and o["lookup_key"] == lookup_key), None
        )
        if holder is None:
            return None
        if not transfer:
            message = f"A price (`{holder['id']}`) already uses that lookup key."
            return self.error(400, message, param="lookup_key")
        holder["lookup_key"] = None
        return None

    def _update_price(self, request: FakeRequest) -> httpx.Response:
        price = self.prices.get(request.match["id"])
        if price is None:
            return self.missing("price", request.match["id"])
        p = request.params
        if "lookup_key" in p:
            problem = self._take_lookup_key(p["lookup_key"], as_bool(p.get("transfer_lookup_key")))
            if problem is not None:
                return problem
            price["lookup_key"] = p["lookup_key"] or None
        if "active" in p:
            price["active"] = as_bool(p["active"])
        if "nickname" in p:
            price["nickname"] = p["nickname"]
        price["metadata"].update(p.get("metadata", {}))
        return self.json(price)

    # -- billing meters -----------------------------------------------------------------------

    def _list_meters(self, request: FakeRequest) -> httpx.Response:
        items = list(self.meters.values())
        if "status" in request.params:
            items = [m for m in items if m["status"] == request.params["status"]]
        return self.json(self.listing(items, "/v1/billing/meters", request.params))

    def _create_meter(self, request: FakeRequest) -> httpx.Response:
        p = request.params
        taken = [
            m
            for m in self.meters.values()
            if m["event_name"] == p["event_name"] and m["status"] == "active"
        ]
        if taken:
            message = f"An active meter with event_name `{p['event_name']}` already exists."
            return self.error(400, message, param="event_name")
        meter = stripe_objects.meter(
            display_name=p["display_name"],
            event_name=p["event_name"],
            default_aggregation=p["default_aggregation"],
            customer_mapping=p.get(
                "customer_mapping", {"type": "by_id", "event_payload_key": "stripe_customer_id"}
            ),
            value_settings=p.get("value_settings", {"event_payload_key": "value"}),
            event_time_window=p.get("event_time_window"),
        )
        self.meters[meter["id"]] = meter
        return self.json(meter)

    def _update_meter(self, request: FakeRequest) -> httpx.Response:
        meter = self.meters.get(request.match["id"])
        if meter is None:
            return self.missing("billing.meter", request.match["id"])
        if "display_name" in request.params:
            meter["display_name"] = request.params["display_name"]
        return self.json(meter)

    def _meter_status(self, status: str) -> Handler:
        def handler(request: FakeRequest) -> httpx.Response:
            meter = self.meters.get(request.match["id"])
            if meter is None:
                return self.missing("billing.meter", request.match["id"])
            meter["status"] = status
            return self.json(meter)

        return handler
