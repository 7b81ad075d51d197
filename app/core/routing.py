"""Routes built on first use: a cold instance builds only the routes its requests reach.

FastAPI builds a route when it is declared: it analyses the endpoint's signature and its
dependencies' and builds a validator for each parameter, body and response model (~2 ms a
route, ~60 routes). `app.include_router` then builds every route of a router again, for the app,
on the first request that reaches that router. A serverless instance pays the first at import
and the second on its first request, though it may only ever serve product reads.

So every domain router declares its routes as `DeferredRoute`s (`APIRouter(route_class=
DeferredRoute)`): declaring one records its arguments (after the router merged its own prefix,
tags, dependencies and responses into them) and compiles its path, which is all matching needs.
`include(app, router)` puts a fresh copy of each on the app's own router (not an included
router, so nothing is built twice), with the app as the provider of dependency overrides. A
route builds itself, as the `APIRoute` it describes, the first time anything needs more than its
path and methods: the request it answers, or the OpenAPI document (which builds them all).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from starlette.routing import compile_path, get_name


class DeferredRoute(APIRoute):
    """An `APIRoute` that records its arguments and is built on first use (see the module)."""

    def __init__(self, path: str, endpoint: Any, **kwargs: Any) -> None:
        self._spec = (path, endpoint, kwargs)
        self._deferred = True
        # what matching (and a 405's Allow) reads, set as APIRoute would set it
        self.path = path
        self.endpoint = endpoint
        name = kwargs.get("name")
        self.name = get_name(endpoint) if name is None else name
        self.include_in_schema = kwargs.get("include_in_schema", True)
        self.path_regex, self.path_format, self.param_convertors = compile_path(path)
        self.methods = {method.upper() for method in kwargs.get("methods") or ["GET"]}

    def __getattr__(self, name: str) -> Any:
        # Only reached for an attribute not set yet: build once, then read it as set.
        if name.startswith("__") or not self.__dict__.get("_deferred"):
            raise AttributeError(name)
        self.build()
        return getattr(self, name)

    def build(self) -> None:
        """Build the route now (idempotent)."""
        if self.__dict__.get("_deferred"):
            self._deferred = False
            path, endpoint, kwargs = self._spec
            APIRoute.__init__(self, path, endpoint, **kwargs)

    @property
    def built(self) -> bool:
        return not self.__dict__.get("_deferred")

    def for_app(self, app: FastAPI) -> DeferredRoute:
        """A new, unbuilt copy of this route for `app` (its dependency overrides apply)."""
        path, endpoint, kwargs = self._spec
        return DeferredRoute(path, endpoint, **{**kwargs, "dependency_overrides_provider": app})


def include(app: FastAPI, router: APIRouter) -> None:
    """Put `router`'s routes on the app's own router, each built when first used.

    A router whose routes are not all `DeferredRoute`s (or that carries start-up handlers or
    a lifespan of its own) is included the usual way."""
    routes = router.routes
    if (
        not routes
        or not all(isinstance(route, DeferredRoute) for route in routes)
        or router.on_startup
        or router.on_shutdown
    ):
        app.include_router(router)
        return
    for route in routes:
        assert isinstance(route, DeferredRoute)
        app.router.routes.append(route.for_app(app))


class Router(APIRouter):
    """A domain's router: an `APIRouter` whose routes are `DeferredRoute`s."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(route_class=DeferredRoute, **kwargs)
