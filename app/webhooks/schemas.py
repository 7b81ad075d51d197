"""Request and response bodies of the webhook endpoints (the table classes never leave)."""

from datetime import datetime
from typing import Literal

from pydantic import Field, field_validator

from app.core.schemas import InputModel, Schema

EventType = Literal["inventory.updated", "product.updated", "usage.threshold"]


class WebhookCreate(InputModel):
    url: str = Field(
        min_length=1,
        max_length=2048,
        description="An https:// URL (public host).",
        json_schema_extra={"pattern": "^https://"},  # checked by the service: 422 `unsafe_…`
    )
    event_types: list[EventType] = Field(min_length=1, max_length=10)
    description: str | None = Field(default=None, max_length=200)

    @field_validator("event_types")
    @classmethod
    def _unique(cls, value: list[EventType]) -> list[EventType]:
        return list(dict.fromkeys(value))


class WebhookPublic(Schema):
    id: str
    url: str
    event_types: list[str]
    description: str | None
    enabled: bool
    disabled_reason: str | None = Field(description="Why deliveries stopped (410, 5 days failing).")
    disabled_at: datetime | None
    created_at: datetime


class WebhookCreated(WebhookPublic):
    secret: str = Field(description="Shown once: the `whsec_…` key that signs every delivery.")


class WebhookList(Schema):
    data: list[WebhookPublic]


class AttemptPublic(Schema):
    id: int
    delivery_id: str
    event_id: str
    event_type: str
    attempt: int = Field(description="1 for the first try of this delivery, 2 for the first retry…")
    status_code: int | None = Field(description="The endpoint's answer; null when none came.")
    succeeded: bool
    latency_ms: int
    error: str | None
    created_at: datetime


class AttemptList(Schema):
    data: list[AttemptPublic]


class TestQueued(Schema):
    delivery_id: str
    queued: bool = Field(default=True, description="Attempted right after this answer.")
