"""Webhook endpoints of one account: register (SSRF-checked, capped), list, read, delete, test."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import AppError, NotFound
from app.models import WebhookAttempt, WebhookEndpoint, new_id, utcnow
from app.webhooks import repository as repo
from app.webhooks.guard import Resolver, allowed_hosts, check_url
from app.webhooks.schemas import AttemptPublic, WebhookCreate, WebhookCreated, WebhookPublic
from app.webhooks.sender import new_secret

MAX_ENDPOINTS_PER_ACCOUNT = 10


class WebhookNotFound(NotFound):
    code = "webhook_not_found"
    default_message = "No webhook endpoint with this id on your account."


class WebhookLimitReached(AppError):
    status_code = 409
    code = "webhook_limit_reached"
    default_message = (
        f"An account can register at most {MAX_ENDPOINTS_PER_ACCOUNT} webhook endpoints; "
        "delete one first."
    )


async def create(
    session: AsyncSession,
    *,
    account_id: str,
    body: WebhookCreate,
    resolver: Resolver,
    allow_hosts: str,
) -> WebhookCreated:
    """Register an endpoint after the SSRF check; the answer carries the secret, once."""
    await check_url(body.url, resolver, allowed_hosts(allow_hosts))
    await repo.lock_account(session, account_id)
    if await repo.count_endpoints(session, account_id) >= MAX_ENDPOINTS_PER_ACCOUNT:
        raise WebhookLimitReached(limit=MAX_ENDPOINTS_PER_ACCOUNT)
    endpoint = WebhookEndpoint(
        id=new_id("whep"),
        account_id=account_id,
        url=body.url,
        description=body.description,
        event_types=list(body.event_types),
        secret=new_secret(),
        created_at=utcnow(),
    )
    await repo.add_endpoint(session, endpoint)
    return WebhookCreated(**public(endpoint).model_dump(), secret=endpoint.secret)


async def list_for(session: AsyncSession, account_id: str) -> list[WebhookPublic]:
    """The account's endpoints (no secrets)."""
    return [public(e) for e in await repo.list_endpoints(session, account_id)]


async def get(session: AsyncSession, account_id: str, endpoint_id: str) -> WebhookEndpoint:
    """One endpoint of the account, or 404 (another account's id is not found either)."""
    endpoint = await repo.get_endpoint(session, account_id, endpoint_id)
    if endpoint is None:
        raise WebhookNotFound()
    return endpoint


async def delete(session: AsyncSession, account_id: str, endpoint_id: str) -> None:
    """Delete the endpoint, its pending deliveries and its history."""
    endpoint = await get(session, account_id, endpoint_id)
    await repo.delete_endpoint(session, endpoint.id)


async def attempts(
    session: AsyncSession, account_id: str, endpoint_id: str, *, limit: int
) -> list[AttemptPublic]:
    """The endpoint's delivery attempts, newest first."""
    endpoint = await get(session, account_id, endpoint_id)
    return attempts_public(await repo.list_attempts(session, endpoint.id, limit=limit))


def public(endpoint: WebhookEndpoint) -> WebhookPublic:
    return WebhookPublic(
        id=endpoint.id,
        url=endpoint.url,
        event_types=list(endpoint.event_types),
        description=endpoint.description,
        enabled=endpoint.enabled,
        disabled_reason=endpoint.disabled_reason,
        disabled_at=endpoint.disabled_at,
        created_at=endpoint.created_at,
    )


def attempts_public(rows: Sequence[WebhookAttempt]) -> list[AttemptPublic]:
    return [AttemptPublic.model_validate(row, from_attributes=True) for row in rows]
