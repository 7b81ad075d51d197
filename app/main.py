"""The FastAPI application: routers, the one error handler, middleware, lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app import cron
from app.accounts.router import public as public_router
from app.accounts.router import router as account_router
from app.admin.router import router as admin_router
from app.billing.router import admin_router as billing_admin_router
from app.billing.router import router as billing_router
from app.billing.webhook_app import add_webhook_route
from app.catalog.router import categories_router
from app.catalog.router import router as catalog_router
from app.core.config import Settings, get_settings
from app.core.errors import install_error_handlers
from app.core.limits import BodySizeLimit
from app.core.openapi import document_shared_errors
from app.core.routing import DeferredRoute, include
from app.gate.middleware import MeteringMiddleware
from app.health.router import router as health_router
from app.inventory.router import admin_router as inventory_admin_router
from app.inventory.router import router as inventory_router
from app.mcp.router import discovery as discovery_router
from app.mcp.router import router as mcp_router
from app.metering.router import router as metering_admin_router
from app.portal.pages import error_page
from app.portal.router import router as portal_router
from app.services import Services
from app.usage.router import router as usage_router
from app.webhooks.router import router as webhooks_router

logger = logging.getLogger("agentmall")


def create_app(settings: Settings | None = None, *, per_invocation: bool = False) -> FastAPI:
    """Build the app. Settings are validated now (a bad one fails start-up, naming itself);
    clients are built on first use, inside the serving event loop.

    `per_invocation`: the host runs the lifespan around every invocation (Mangum on AWS
    Lambda), so start-up work runs once per instance and the clients are never closed between
    invocations (a closed Upstash client would leave every later call unmetered, and a closed
    pool would reconnect each time); the instance's end closes them."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not app.state.started:
            await _start(app, settings)
            app.state.started = True
        yield
        if not per_invocation:
            await app.state.services.close()

    app = FastAPI(
        title="AgentMall API",
        version="1.0.0",
        summary="A commerce data API for AI agents, with monetization built in.",
        lifespan=lifespan,
    )
    app.state.services = Services.build(settings)
    app.state.started = False
    app.state.error_page = error_page  # the portal's paths answer errors as pages
    install_error_handlers(app)
    app.add_middleware(MeteringMiddleware)
    app.add_middleware(BodySizeLimit)
    app.router.route_class = DeferredRoute  # the app's own routes too
    services = app.state.services
    add_webhook_route(app, settings, services.db, services.versions, lambda: services.stripe)
    # Starlette tries routes in order: the hot product reads come right after health.
    for router in (
        health_router,
        catalog_router,
        public_router,
        account_router,
        usage_router,
        billing_router,
        categories_router,
        inventory_router,
        webhooks_router,
        admin_router,
        billing_admin_router,
        metering_admin_router,
        inventory_admin_router,
        cron.router,
        mcp_router,
        discovery_router,
        portal_router,
    ):
        include(app, router)  # each route built on first use (app/core/routing.py)
    document_shared_errors(app)
    return app


async def _start(app: FastAPI, settings: Settings) -> None:
    if settings.is_sqlite:  # the embedded default migrates itself; PostgreSQL never does
        from app.core.embedded import migrate_embedded_database

        await migrate_embedded_database(settings)
    if settings.is_sqlite and settings.LOAD_SAMPLE_CATALOG:
        from app.catalog.importer import load_sample_if_empty

        loaded = await load_sample_if_empty(app.state.services.db)
        if loaded:
            logger.info("loaded %d sample products into the embedded database", loaded)
