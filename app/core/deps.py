"""`Annotated` dependency aliases, defined once and reused by every router."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import repository as accounts_repo
from app.accounts.keys import hash_key, looks_like_key
from app.core.config import Settings
from app.core.services import Services
from app.gate import errors
from app.models import Account, ApiKey


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def get_settings_dep(services: ServicesDep) -> Settings:
    return services.settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


async def get_session(services: ServicesDep) -> AsyncIterator[AsyncSession]:
    async for session in services.db.session():
        yield session


# scope="function": commit (and the after-commit publishing) before the response is sent, so a
# client that got a 2xx can rely on the change; the default scope would commit after sending.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]

ApiKeyHeader = Annotated[
    str | None, Header(alias="X-API-Key", description="Your AgentMall API key.")
]


@dataclass(frozen=True)
class Principal:
    """The caller of a control-plane endpoint, read fresh from Postgres (never cached)."""

    key: ApiKey
    account: Account


async def get_principal(session: SessionDep, x_api_key: ApiKeyHeader = None) -> Principal:
    if not x_api_key:
        raise errors.MissingApiKey()
    if not looks_like_key(x_api_key):
        raise errors.InvalidApiKey()
    key = await accounts_repo.get_key_by_hash(session, hash_key(x_api_key))
    if key is None or key.status == "revoked":
        raise errors.InvalidApiKey()
    if key.status == "suspended":
        raise errors.KeySuspended()
    account = await accounts_repo.get_account(session, key.account_id)
    if account is None:
        raise errors.InvalidApiKey()
    return Principal(key=key, account=account)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def require_admin(
    session: SessionDep, settings: SettingsDep, x_api_key: ApiKeyHeader = None
) -> str:
    """The founder: `X-API-Key: $ADMIN_API_KEY` (constant-time compare) or an admin account."""
    if not x_api_key:
        raise errors.MissingApiKey()
    admin_key = settings.ADMIN_API_KEY
    if admin_key and hmac.compare_digest(x_api_key.encode(), admin_key.encode()):
        return "admin-key"
    principal = await get_principal(session, x_api_key)
    if principal.account.role != "admin":
        raise errors.AdminRequired()
    return principal.account.id


AdminDep = Annotated[str, Depends(require_admin)]
