"""Routes built on first use (app/core/routing.py): an app builds no route at start-up, a request
builds only the route that answers it, and the result is the app `include_router` would build —
the same OpenAPI document, the same answers, the app's dependency overrides."""

import json
from typing import Annotated

import pytest
from fastapi import Depends, FastAPI
from fastapi.routing import APIRoute
from httpx import ASGITransport, AsyncClient

from app.core.config import Settings
from app.core.routing import DeferredRoute, Router, include
from app.main import create_app


@pytest.fixture
def backend() -> str:
    """Routing does not depend on the rate limiter's backend."""
    return "redis"


def _deferred(app: FastAPI) -> list[DeferredRoute]:
    return [route for route in app.routes if isinstance(route, DeferredRoute)]


def _api_routes(app: FastAPI) -> list[APIRoute]:
    return [route for route in app.routes if isinstance(route, APIRoute)]


def test_every_api_route_of_the_app_is_deferred_and_none_is_built_at_start(
    settings: Settings,
) -> None:
    app = create_app(settings)
    routes = _api_routes(app)
    assert len(routes) > 50
    plain = [route.path for route in routes if not isinstance(route, DeferredRoute)]
    assert plain == []  # a router declared with APIRouter() instead of Router() shows here
    assert [route.path for route in _deferred(app) if route.built] == []


async def test_a_request_builds_only_the_route_that_answers_it(app: FastAPI) -> None:
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as client:
        response = await client.get("/v1/health")
    assert response.status_code == 200
    built = [(route.path, sorted(route.methods)) for route in _deferred(app) if route.built]
    assert built == [("/v1/health", ["GET"])]


async def test_the_openapi_document_is_the_one_include_router_builds(
    settings: Settings, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same routers included the usual way (every route built at once, then again for the
    app) document the same paths, operations, ids and schemas, in the same order."""
    from app import main

    monkeypatch.setattr(main, "include", lambda target, router: target.include_router(router))
    monkeypatch.setattr(main, "DeferredRoute", APIRoute)  # the app's own (webhook) route
    usual = main.create_app(settings)
    try:
        assert not _deferred(usual)
        assert json.dumps(app.openapi()) == json.dumps(usual.openapi())
    finally:
        await usual.state.services.close()
    assert all(route.built for route in _deferred(app))  # the document needed them all


async def test_the_apps_dependency_overrides_reach_a_deferred_route(
    settings: Settings, app: FastAPI
) -> None:
    """Each app gets its own copy of a router's routes, with itself as the provider of
    overrides: overriding a dependency on one app changes neither the other nor the router."""
    probe = Router(prefix="/probe")

    def answer() -> str:
        return "real"

    @probe.get("")
    async def read(value: Annotated[str, Depends(answer)]) -> dict[str, str]:
        return {"value": value}

    other = FastAPI()
    include(app, probe)
    include(other, probe)
    app.dependency_overrides[answer] = lambda: "overridden"
    async with (
        AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as first,
        AsyncClient(transport=ASGITransport(app=other), base_url="http://test") as second,
    ):
        assert (await first.get("/probe")).json() == {"value": "overridden"}
        assert (await second.get("/probe")).json() == {"value": "real"}
    spec = probe.routes[0]
    assert isinstance(spec, DeferredRoute) and not spec.built  # the router's own stays a spec


def test_a_route_builds_once_and_reads_as_the_apiroute_it_describes() -> None:
    probe = Router(prefix="/v1/probe", tags=["probe"])

    @probe.post("/{sku}", status_code=201)
    async def create(sku: str) -> dict[str, str]:
        """Make one."""
        return {"sku": sku}

    route = probe.routes[0]
    assert isinstance(route, DeferredRoute) and not route.built
    # matching needs no build
    assert (route.path, route.methods, route.name) == ("/v1/probe/{sku}", {"POST"}, "create")
    assert route.path_regex.match("/v1/probe/ABC") and not route.built
    assert route.status_code == 201 and route.built  # anything else builds it
    dependant = route.dependant
    assert route.dependant is dependant  # once
    assert route.tags == ["probe"] and route.description == "Make one."
    reference = APIRoute(
        "/v1/probe/{sku}", create, methods=["POST"], status_code=201, tags=["probe"]
    )
    assert route.unique_id == reference.unique_id
    with pytest.raises(AttributeError):
        route.no_such_attribute  # noqa: B018
