"""Wiring for routers: `Annotated` dependency aliases and the gate dependency, defined once."""

# No `from __future__ import annotations`: the gate dependency below builds its signature from
# closure variables, which FastAPI can only see in evaluated annotations.

from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from sqlalchemy.ext.asyncio import AsyncSession

from app.catalog.search.engine import SearchEngine
from app.core.config import Settings
from app.gate import errors
from app.gate.decision import GateDecision
from app.models import Account, ApiKey, Plan
from app.services import Services


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def get_services(request: Request) -> Services:
    return services_of(request)


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_settings_dep(services: ServicesDep) -> Settings:
    return services.settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


async def get_search_engine(services: ServicesDep) -> SearchEngine:
    return services.search


SearchEngineDep = Annotated[SearchEngine, Depends(get_search_engine)]


READ_ONLY = "__agentmall_read_only__"


def read_only[F: Callable[..., Any]](endpoint: F) -> F:
    """Mark a route that writes nothing: its session (the gate's too) skips BEGIN/COMMIT."""
    setattr(endpoint, READ_ONLY, True)
    return endpoint


async def get_session(request: Request, services: ServicesDep) -> AsyncIterator[AsyncSession]:
    route = request.scope.get("route")
    quiet = getattr(getattr(route, "endpoint", None), READ_ONLY, False)
    async with services.db.unit(read_only=quiet) as session:
        yield session


# scope="function": commit (and the after-commit publishing) before the response is sent, so a
# client that got a 2xx can rely on the change; the default scope would commit after sending.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]

ApiKeyHeader = Annotated[
    str | None, Header(alias="X-API-Key", description="Your AgentMall API key.")
]


def bearer_token(authorization: str | None) -> str | None:
    """The credentials of `Authorization: Bearer <key>`; None for any other value (no header, an
    empty one, another scheme, a scheme without credentials): no key, never an error."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


def presented_key(request: Request, x_api_key: str | None = None) -> str | None:
    """The API key a request presents: `X-API-Key` (`x_api_key` when the route already read it),
    else `Authorization: Bearer <key>` (what header-configured clients send); REST and MCP alike."""
    key = x_api_key or request.headers.get("x-api-key")
    return key or bearer_token(request.headers.get("authorization"))


@dataclass(frozen=True)
class Principal:
    """The caller of a control-plane endpoint, read fresh from Postgres (never cached)."""

    key: ApiKey
    account: Account
    plan: Plan


async def get_principal(
    request: Request, services: ServicesDep, session: SessionDep, x_api_key: ApiKeyHeader = None
) -> Principal:
    """The key's owner, read fresh; unknown keys spend the address's allowance (429 past it)."""
    client_ip = services.client_ip.of(request)
    raw_key = presented_key(request, x_api_key)
    key, account, plan = await services.gate.resolver.principal(session, raw_key, client_ip)
    if key.status == "suspended":
        raise errors.KeySuspended()
    return Principal(key=key, account=account, plan=plan)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def require_admin(
    request: Request, services: ServicesDep, session: SessionDep, x_api_key: ApiKeyHeader = None
) -> str:
    """The founder (`X-API-Key: $ADMIN_API_KEY`) or an admin account; guesses are limited."""
    if not x_api_key:
        raise errors.MissingApiKey()
    admin_key = services.settings.ADMIN_API_KEY
    client_ip = services.client_ip.of(request)
    resolver = services.gate.resolver
    if admin_key and await resolver.matches_secret(
        x_api_key, admin_key.get_secret_value(), client_ip
    ):
        return "admin-key"
    principal = await get_principal(request, services, session, x_api_key)
    if principal.account.role != "admin":
        raise errors.AdminRequired()
    return principal.account.id


AdminDep = Annotated[str, Depends(require_admin)]


GateDep = Callable[..., Coroutine[Any, Any, GateDecision]]


def gate(feature: str, endpoint: str, cost: Callable[..., int] | None = None) -> GateDep:
    """A dependency that admits a request to `endpoint` (needs `feature`) or raises the gate error.

    `cost`, when given, is itself a dependency (e.g. one that reads the validated body), so a body
    that fails validation is answered 422 before anything is counted.
    """

    async def check(
        request: Request,
        services: ServicesDep,
        session: SessionDep,
        units: Annotated[int, Depends(cost or _one)],
        x_api_key: ApiKeyHeader = None,
    ) -> GateDecision:
        return await admit(
            request, services, session, x_api_key, feature=feature, endpoint=endpoint, cost=units
        )

    return check


async def admit(
    request: Request,
    services: Services,
    session: AsyncSession,
    x_api_key: str | None,
    *,
    feature: str,
    endpoint: str,
    cost: int = 1,
    products: Sequence[str] = (),
) -> GateDecision:
    """What the gate dependency does, callable from a handler: the product reads call it
    themselves (their parameters already validated), with the product version fields they read,
    which the gate's one command returns too. Sets `request.state.gate` for the middleware."""
    decision = await services.gate.check(
        session,
        raw_key=presented_key(request, x_api_key),
        feature=feature,
        endpoint=endpoint,
        cost=cost,
        client_ip=services.client_ip.of(request),
        products=products,
    )
    request.state.gate = decision
    return decision


async def _one() -> int:
    return 1
