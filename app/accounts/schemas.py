"""Account, key and plan payloads."""

from datetime import datetime
from typing import Any

from pydantic import ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from app.core.features import Feature
from app.core.schemas import InputModel, Schema
from app.usage.service import LAST_USED_RETENTION_S


class SignupRequest(InputModel):
    email: str = Field(
        max_length=254,
        description="Where we reach you about your account.",
        json_schema_extra={"format": "email"},  # checked by the service: 422 `invalid_email`
    )


class SignupResponse(Schema):
    account_id: str
    api_key: str = Field(description="Shown once: store it now; we keep only its hash.")
    plan: str


class PlanPublic(Schema):
    code: str
    name: str
    monthly_price_cents: int | None
    currency: str
    included_calls: int
    requests_per_minute: int
    features: list[str]
    hard_limit: bool
    overage_cents_per_1000: int | None


class PlanList(Schema):
    data: list[PlanPublic]


# Every field but the two prices, whose `null` means "none".
NON_NULL_PLAN_FIELDS = (
    "code",
    "name",
    "currency",
    "included_calls",
    "requests_per_minute",
    "features",
    "hard_limit",
    "public",
)


def _no_null(schema: dict[str, Any]) -> None:
    """The document offers `null` only where it is accepted: omitted means "keep", but a `null`
    for a field outside the two prices is a 422 (`_not_null` below)."""
    for name in NON_NULL_PLAN_FIELDS:
        field = schema["properties"][name]
        field.pop("default", None)
        options = [o for o in field.pop("anyOf", []) if o.get("type") != "null"]
        if options:
            field.update(options[0])


class PlanUpdate(InputModel):
    """Create or change a plan (founder). Omitted fields keep their value on an existing plan.

    Accepts the `PlanPublic` representation as is: `code` may be sent but must equal the path's.
    """

    model_config = ConfigDict(json_schema_extra=_no_null)

    code: str | None = Field(
        default=None, max_length=32, exclude=True, description="If sent, the plan code in the path."
    )
    name: str | None = Field(default=None, min_length=1, max_length=80)
    monthly_price_cents: int | None = Field(default=None, ge=0, le=10_000_000_00)
    currency: str | None = Field(default=None, pattern=r"^[a-z]{3}$")
    included_calls: int | None = Field(default=None, ge=0, le=1_000_000_000)
    requests_per_minute: int | None = Field(default=None, ge=1, le=100_000)
    features: list[Feature] | None = Field(default=None, max_length=32)
    hard_limit: bool | None = None
    overage_cents_per_1000: int | None = Field(default=None, ge=0, le=10_000_000)
    public: bool | None = None

    @field_validator(*NON_NULL_PLAN_FIELDS, mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        """`null` means "none" for the two prices; for anything else it is an error."""
        if value is None:
            raise PydanticCustomError("null_not_allowed", "cannot be null")
        return value


class PeriodPublic(Schema):
    start: datetime
    end: datetime


class AccountPublic(Schema):
    id: str
    email: str
    role: str
    plan: PlanPublic
    subscription_status: str
    current_period: PeriodPublic
    created_at: datetime


class AccountPlanUpdate(InputModel):
    plan: str = Field(min_length=1, max_length=32)


class KeyCreate(InputModel):
    name: str | None = Field(default=None, max_length=100)


class KeyPublic(Schema):
    id: str
    prefix: str
    name: str | None
    status: str
    created_at: datetime
    expires_at: datetime | None = Field(
        description="Set once the key was rotated: it stops working at this time."
    )
    last_used_at: datetime | None = Field(
        default=None,
        description="When a data-plane request with this key was last admitted (to the second); "
        f"null if not within {LAST_USED_RETENTION_S // 86_400} days, or not known right now.",
    )


class KeyCreated(KeyPublic):
    api_key: str = Field(description="Shown once: store it now; we keep only its hash.")


DEFAULT_GRACE_SECONDS = 86_400
MAX_GRACE_SECONDS = 7 * 86_400


class KeyRotate(InputModel):
    grace_seconds: int = Field(
        default=DEFAULT_GRACE_SECONDS,
        ge=0,
        le=MAX_GRACE_SECONDS,
        description="How long the old key keeps working (0: it stops at once; at most 7 days).",
    )


class KeyRotated(KeyCreated):
    """The new key (plaintext shown once) and when the key it replaces stops working."""

    old_key_id: str
    old_key_expires_at: datetime


class AccountStatusPublic(Schema):
    account_id: str
    status: str = Field(description="`active`, or `suspended`: none of its keys work.")


class KeyList(Schema):
    data: list[KeyPublic]
