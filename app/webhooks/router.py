"""Webhook endpoints (data plane: keyed, gated by the `webhooks` feature, metered).

`POST /v1/webhooks/{id}/test` delivers at once (the answer carries the attempt), so a developer
sees a misconfigured receiver immediately rather than after the next cron run.
"""

from typing import Annotated

from fastapi import BackgroundTasks, Depends, Query, status

from app.core.errors import AppError, error_responses
from app.core.routing import Router
from app.core.schemas import ResourceId
from app.deps import ServicesDep, SessionDep, SettingsDep, gate
from app.gate.decision import GateDecision
from app.webhooks import delivery, outbox, service
from app.webhooks.guard import Resolver, system_resolver
from app.webhooks.schemas import (
    AttemptList,
    TestQueued,
    WebhookCreate,
    WebhookCreated,
    WebhookList,
    WebhookPublic,
)

router = Router(
    prefix="/v1/webhooks",
    tags=["webhooks"],
    responses=error_responses(401, 402, 403, 404, 409, 413, 422, 429, 503),
)


def get_resolver() -> Resolver:
    """The DNS resolver of the SSRF guard (tests override this dependency)."""
    return system_resolver


ResolverDep = Annotated[Resolver, Depends(get_resolver)]
CreateGate = Annotated[GateDecision, Depends(gate("webhooks", "webhooks.create"))]
ListGate = Annotated[GateDecision, Depends(gate("webhooks", "webhooks.list"))]
GetGate = Annotated[GateDecision, Depends(gate("webhooks", "webhooks.get"))]
DeleteGate = Annotated[GateDecision, Depends(gate("webhooks", "webhooks.delete"))]
TestGate = Annotated[GateDecision, Depends(gate("webhooks", "webhooks.test"))]
AttemptsGate = Annotated[GateDecision, Depends(gate("webhooks", "webhooks.attempts"))]


class WebhookDisabled(AppError):
    status_code = 409
    code = "webhook_disabled"
    default_message = "This endpoint is disabled (see disabled_reason); register it again."


@router.post("", status_code=status.HTTP_201_CREATED, response_model=WebhookCreated)
async def create_webhook(
    body: WebhookCreate,
    session: SessionDep,
    settings: SettingsDep,
    resolver: ResolverDep,
    decision: CreateGate,
) -> WebhookCreated:
    """Register an https endpoint for some event types; the signing secret is shown only now."""
    return await service.create(
        session,
        account_id=decision.context.account_id,
        body=body,
        resolver=resolver,
        allow_hosts=settings.WEBHOOK_ALLOW_HOSTS,
    )


@router.get("", response_model=WebhookList)
async def list_webhooks(session: SessionDep, decision: ListGate) -> WebhookList:
    """Your webhook endpoints (never their secrets)."""
    return WebhookList(data=await service.list_for(session, decision.context.account_id))


@router.get("/{webhook_id}", response_model=WebhookPublic)
async def get_webhook(
    webhook_id: ResourceId, session: SessionDep, decision: GetGate
) -> WebhookPublic:
    """One endpoint, with `disabled_reason` when deliveries stopped."""
    return service.public(await service.get(session, decision.context.account_id, webhook_id))


@router.delete("/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_webhook(webhook_id: ResourceId, session: SessionDep, decision: DeleteGate) -> None:
    """Delete an endpoint: nothing more is sent to it."""
    await service.delete(session, decision.context.account_id, webhook_id)


@router.post("/{webhook_id}/test", response_model=TestQueued, status_code=status.HTTP_202_ACCEPTED)
async def test_webhook(
    webhook_id: ResourceId,
    session: SessionDep,
    services: ServicesDep,
    resolver: ResolverDep,
    decision: TestGate,
    background: BackgroundTasks,
) -> TestQueued:
    """Queue a signed `webhook.test` event and attempt it right after answering (see
    `/attempts` for the outcome; a failure is retried on the normal schedule)."""
    endpoint = await service.get(session, decision.context.account_id, webhook_id)
    if not endpoint.enabled:
        raise WebhookDisabled()
    delivery_id = await outbox.enqueue_test(
        session, endpoint_id=endpoint.id, account_id=endpoint.account_id
    )
    # After the response, when this request's unit of work has committed and given its
    # connection permit back: attempting inline would hold one permit while waiting for another.
    background.add_task(
        delivery.deliver, services.db, services.settings, resolver=resolver, only=[delivery_id]
    )
    return TestQueued(delivery_id=delivery_id)


@router.get("/{webhook_id}/attempts", response_model=AttemptList)
async def list_attempts(
    webhook_id: ResourceId,
    session: SessionDep,
    decision: AttemptsGate,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> AttemptList:
    """The delivery history: each attempt's status, latency and error, newest first."""
    rows = await service.attempts(session, decision.context.account_id, webhook_id, limit=limit)
    return AttemptList(data=rows)
