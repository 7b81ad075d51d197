"""Every table, in one place. Schemas that cross the HTTP boundary live in each domain's
`schemas.py`; these classes never leave a service.

Money is integer minor units plus a currency; timestamps are timezone-aware UTC.
"""

import secrets
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id(prefix: str) -> str:
    """A random, prefixed public id (`acct_…`, `key_…`): readable in logs, never guessable."""
    return f"{prefix}_{secrets.token_hex(12)}"


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """`timestamptz` on PostgreSQL; on SQLite (which drops the zone) values are read back as UTC."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given; use timezone-aware UTC")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def _ts(*, nullable: bool, default: Any = None) -> Any:
    """A timezone-aware timestamp column."""
    if default is not None:
        return Field(default_factory=default, sa_type=UTCDateTime, nullable=nullable)
    return Field(default=None, sa_type=UTCDateTime, nullable=nullable)


class Plan(SQLModel, table=True):
    __tablename__ = "plans"

    code: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=80)
    monthly_price_cents: int | None = None  # None = custom contract
    currency: str = Field(default="usd", max_length=3)
    included_calls: int  # monthly quota
    requests_per_minute: int
    features: list[str] = Field(default_factory=list, sa_column=sa.Column(sa.JSON, nullable=False))
    hard_limit: bool = True  # True: 429 past the quota; False: served and billed as overage
    overage_cents_per_1000: int | None = None  # $0.002/call = 200 cents per 1,000 calls
    public: bool = True
    version: int = 1  # bumped on every change; published to Redis so caches notice at once
    updated_at: datetime = _ts(nullable=False, default=utcnow)


class Account(SQLModel, table=True):
    __tablename__ = "accounts"

    id: str = Field(primary_key=True, max_length=40)
    email: str = Field(max_length=254, sa_column_kwargs={"unique": True})
    plan_code: str = Field(foreign_key="plans.code", max_length=32)
    role: str = Field(default="user", max_length=16)  # user | admin
    subscription_status: str = Field(default="none", max_length=24)
    stripe_customer_id: str | None = Field(default=None, max_length=64)  # unique (migration 0003)
    stripe_subscription_id: str | None = Field(default=None, max_length=64)
    current_period_start: datetime | None = _ts(nullable=True)
    current_period_end: datetime | None = _ts(nullable=True)
    # Bumped with any change a warm key cache must notice (plan, status, a key revoked or
    # suspended); published to Redis, where the gate script compares it on every request.
    policy_version: int = 1
    # active | suspended (by the founder: every key stops, no new keys); migration 0009
    status: str = Field(default="active", max_length=16)
    created_at: datetime = _ts(nullable=False, default=utcnow)


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_keys"

    id: str = Field(primary_key=True, max_length=40)
    account_id: str = Field(foreign_key="accounts.id", index=True, max_length=40)
    key_hash: str = Field(max_length=64, sa_column_kwargs={"unique": True})  # SHA-256 hex
    prefix: str = Field(max_length=16)  # shown in listings; never enough to authenticate
    name: str | None = Field(default=None, max_length=100)
    status: str = Field(default="active", max_length=16)  # active | suspended | revoked
    created_at: datetime = _ts(nullable=False, default=utcnow)
    revoked_at: datetime | None = _ts(nullable=True)
    # A rotated key works until then (the grace period), then stops everywhere; migration 0009
    expires_at: datetime | None = _ts(nullable=True)


class Product(SQLModel, table=True):
    __tablename__ = "products"

    sku: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    description: str = Field(default="", max_length=2000)
    category: str = Field(index=True, max_length=64)
    price_cents: int = Field(ge=0)
    currency: str = Field(default="usd", max_length=3)
    attributes: dict[str, Any] = Field(
        default_factory=dict, sa_column=sa.Column(sa.JSON, nullable=False)
    )
    created_at: datetime = _ts(nullable=False, default=utcnow)
    updated_at: datetime = _ts(nullable=False, default=utcnow)


class Inventory(SQLModel, table=True):
    __tablename__ = "inventory"

    sku: str = Field(primary_key=True, foreign_key="products.sku", max_length=64)
    quantity: int = Field(default=0, ge=0)
    updated_at: datetime = _ts(nullable=False, default=utcnow)


class UsageRollup(SQLModel, table=True):
    """Durable copy of the Redis usage counters: one row per account, period, day, endpoint and
    Redis counter epoch. `count` is the absolute value Redis held when the usage hash's change
    counter was `seq`, so a re-run of the roll-up rewrites the same number (never adds it twice)
    and an older snapshot never overwrites a newer one."""

    __tablename__ = "usage_rollups"
    __table_args__ = (
        sa.UniqueConstraint("account_id", "period_start", "day", "endpoint", "epoch"),
    )

    id: int | None = Field(default=None, primary_key=True)
    account_id: str = Field(foreign_key="accounts.id", index=True, max_length=40)
    period_start: datetime = _ts(nullable=False)
    day: date
    endpoint: str = Field(max_length=48)
    epoch: str = Field(max_length=32)  # "pg" = counted straight into Postgres (Redis was down)
    count: int = 0
    seq: int = Field(default=0, sa_type=sa.BigInteger)  # the hash's change counter `c` then


class UsageSettlement(SQLModel, table=True):
    """What billing reads: the settled units of one account's period in one Redis counter epoch,
    i.e. its counted units minus those in admission buckets still open to refunds (a bucket is
    settled once it closed longer ago than any request can run). Written by the roll-up as an
    absolute value versioned by `seq` (the usage hash's change counter), like `usage_rollups`;
    it only grows within an epoch."""

    __tablename__ = "usage_settlements"

    account_id: str = Field(primary_key=True, foreign_key="accounts.id", max_length=40)
    period_start: datetime = Field(primary_key=True, sa_type=UTCDateTime)
    epoch: str = Field(primary_key=True, max_length=32)
    settled: int = Field(default=0, sa_type=sa.BigInteger)
    seq: int = Field(default=0, sa_type=sa.BigInteger)
    updated_at: datetime = _ts(nullable=False, default=utcnow)


class DegradedCall(SQLModel, table=True):
    """A request the gate could not settle with Redis (its answer never came), kept by request id
    until the roll-up settles it. Served and successful (`units` > 0): if the gate script did
    count it in Redis after all (its reply was only late), the row is dropped; otherwise its units
    move into `usage_rollups` (epoch "pg"). Failed or refused (a void, `units` < 0): if the script
    did count it, the same negative units go to epoch "pg" (the failed call is taken back before
    its admission bucket can be billed); otherwise the row is dropped."""

    __tablename__ = "degraded_calls"

    request_id: str = Field(primary_key=True, max_length=32)
    account_id: str = Field(foreign_key="accounts.id", index=True, max_length=40)
    period_start: datetime = _ts(nullable=False)
    day: date
    endpoint: str = Field(max_length=48)
    units: int
    created_at: datetime = _ts(nullable=False, default=utcnow)


class StripeEvent(SQLModel, table=True):
    """A Stripe webhook event, recorded in the same transaction as its effect: a redelivery finds
    its id here and changes nothing."""

    __tablename__ = "stripe_events"

    id: str = Field(primary_key=True, max_length=255)
    type: str = Field(max_length=100)
    account_id: str | None = Field(default=None, max_length=40)
    processed_at: datetime = _ts(nullable=False, default=utcnow)


class BillingSetting(SQLModel, table=True):
    """Ids of the Stripe objects the bootstrap command created (product, prices, meter)."""

    __tablename__ = "billing_settings"

    key: str = Field(primary_key=True, max_length=64)
    value: str = Field(max_length=255)
    updated_at: datetime = _ts(nullable=False, default=utcnow)


class BillingPeriod(SQLModel, table=True):
    """A paid subscription period as Stripe reported it (written by the webhook function): the
    metering flush bills each one's usage beyond its plan's included calls."""

    __tablename__ = "billing_periods"

    account_id: str = Field(primary_key=True, foreign_key="accounts.id", max_length=40)
    period_start: datetime = Field(primary_key=True, sa_type=UTCDateTime)
    period_end: datetime = _ts(nullable=False)
    plan_code: str = Field(foreign_key="plans.code", max_length=32)
    stripe_customer_id: str = Field(max_length=64)
    updated_at: datetime = _ts(nullable=False, default=utcnow)


class MeterReport(SQLModel, table=True):
    """How many overage units of one account's period have been handed to the meter outbox."""

    __tablename__ = "meter_reports"

    account_id: str = Field(primary_key=True, foreign_key="accounts.id", max_length=40)
    period_start: datetime = Field(primary_key=True, sa_type=UTCDateTime)
    reported: int = Field(default=0, sa_type=sa.BigInteger)
    updated_at: datetime = _ts(nullable=False, default=utcnow)


class MeterEvent(SQLModel, table=True):
    """One aggregated Stripe meter event (the outbox): written before it is sent, sent with its
    deterministic `identifier` until Stripe acknowledges it, so a crash or a retry never bills
    twice and never loses units."""

    __tablename__ = "meter_events"

    identifier: str = Field(primary_key=True, max_length=100)
    account_id: str = Field(foreign_key="accounts.id", index=True, max_length=40)
    stripe_customer_id: str = Field(max_length=64)
    period_start: datetime = _ts(nullable=False)
    value: int = Field(sa_type=sa.BigInteger)
    event_time: datetime = _ts(nullable=False)
    created_at: datetime = _ts(nullable=False, default=utcnow)
    sent_at: datetime | None = _ts(nullable=True)
    # Stripe refused it (a 4xx other than a duplicate): retried once a day, not on every run,
    # so refused events never crowd out the rest of the outbox; `refusal` says why.
    refused_at: datetime | None = _ts(nullable=True)
    refusal: str | None = Field(default=None, max_length=500)


class UsageNotice(SQLModel, table=True):
    """A quota notice (80/100/120 %) sent to an account once per period."""

    __tablename__ = "usage_notices"

    account_id: str = Field(primary_key=True, foreign_key="accounts.id", max_length=40)
    period_start: datetime = Field(primary_key=True, sa_type=UTCDateTime)
    threshold: int = Field(primary_key=True)
    created_at: datetime = _ts(nullable=False, default=utcnow)
    sent_at: datetime | None = _ts(nullable=True)


# --- inventory: the change log and idempotency keys (app/inventory) ---


class InventoryChange(SQLModel, table=True):
    """One effective change of a SKU's stock, price or product record, with the state after it.

    Served by the change feed in (`txid`, `id`) order. `txid` is the writing transaction's id on
    PostgreSQL (a server default, `pg_current_xact_id()`), 0 on SQLite: the feed only serves
    changes whose transaction is older than every transaction still running, so a change whose
    sequence value was drawn early but committed late is never skipped (see app/inventory/feed.py).
    """

    __tablename__ = "inventory_changes"
    __table_args__ = (sa.Index("ix_inventory_changes_txid_id", "txid", "id"),)

    id: int | None = Field(
        default=None,
        sa_column=sa.Column(
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),  # SQLite: a rowid alias
            primary_key=True,
            autoincrement=True,
        ),
    )
    txid: int = Field(
        default=0,
        # PostgreSQL: the migration's default is pg_current_xact_id(), and inserts set it too.
        sa_column=sa.Column(sa.BigInteger, nullable=False, server_default=sa.text("0")),
    )
    sku: str = Field(max_length=64, index=True)
    kind: str = Field(max_length=16)  # inventory (a sync) | product (an upsert)
    stock: int
    price_cents: int
    currency: str = Field(max_length=3)
    changed_at: datetime = _ts(nullable=False, default=utcnow)


class IdempotencyKey(SQLModel, table=True):
    """An `Idempotency-Key` a write was made with: the request's fingerprint and the response it
    got, replayed for a retry with the same body. Kept at least 24 h (pruned after 48 h)."""

    __tablename__ = "idempotency_keys"

    scope: str = Field(primary_key=True, max_length=48)  # the operation, e.g. inventory.sync
    key: str = Field(primary_key=True, max_length=255)
    request_hash: str = Field(max_length=64)  # SHA-256 of the canonical request body
    status_code: int | None = None  # None while the first request is in flight
    response: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(sa.JSON))
    created_at: datetime = Field(
        default_factory=utcnow, sa_type=UTCDateTime, nullable=False, index=True
    )


# --- outbound webhooks: endpoints, the outbox, deliveries, attempts (app/webhooks) ---


class WebhookEndpoint(SQLModel, table=True):
    """An account's HTTPS endpoint for outbound events. `secret` (`whsec_…`) signs every delivery:
    shown once at creation, never returned or logged afterwards (`repr=False`; the engine hides
    bound parameters)."""

    __tablename__ = "webhook_endpoints"

    id: str = Field(primary_key=True, max_length=40)
    account_id: str = Field(foreign_key="accounts.id", index=True, max_length=40)
    url: str = Field(max_length=2048)
    description: str | None = Field(default=None, max_length=200)
    event_types: list[str] = Field(
        default_factory=list, sa_column=sa.Column(sa.JSON, nullable=False)
    )
    secret: str = Field(max_length=64, repr=False)
    enabled: bool = True
    disabled_reason: str | None = Field(default=None, max_length=200)
    disabled_at: datetime | None = _ts(nullable=True)
    failing_since: datetime | None = _ts(nullable=True)  # first failure of the current streak
    last_failed_at: datetime | None = _ts(nullable=True)  # a quiet day ends a streak
    created_at: datetime = _ts(nullable=False, default=utcnow)


class WebhookEvent(SQLModel, table=True):
    """One event, written in the transaction of the change it reports; its id is `webhook-id`."""

    __tablename__ = "webhook_events"

    id: str = Field(primary_key=True, max_length=40)
    type: str = Field(max_length=64)
    account_id: str | None = Field(default=None, max_length=40)  # None: catalog-wide
    payload: dict[str, Any] = Field(
        default_factory=dict, sa_column=sa.Column(sa.JSON, nullable=False)
    )
    created_at: datetime = _ts(nullable=False, default=utcnow)


class WebhookDelivery(SQLModel, table=True):
    """One event for one endpoint: pending until delivered, given up (`failed`) or `cancelled`
    (endpoint disabled or deleted). A run claims it by moving `next_attempt_at` forward (a lease)
    under a fresh `claim_token`; only the holder of the token records the outcome."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (sa.Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),)

    id: str = Field(primary_key=True, max_length=40)
    event_id: str = Field(foreign_key="webhook_events.id", index=True, max_length=40)
    endpoint_id: str = Field(foreign_key="webhook_endpoints.id", index=True, max_length=40)
    status: str = Field(default="pending", max_length=16)  # pending|delivered|failed|cancelled
    attempts: int = 0
    next_attempt_at: datetime = _ts(nullable=False, default=utcnow)
    claim_token: str | None = Field(default=None, max_length=32)
    created_at: datetime = _ts(nullable=False, default=utcnow)
    finished_at: datetime | None = _ts(nullable=True)


class WebhookAttempt(SQLModel, table=True):
    """One HTTP attempt of a delivery: what the endpoint answered (or why nothing was sent)."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (sa.Index("ix_webhook_attempts_endpoint", "endpoint_id", "id"),)

    id: int | None = Field(
        default=None,
        primary_key=True,
        sa_type=sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
    )
    delivery_id: str = Field(foreign_key="webhook_deliveries.id", index=True, max_length=40)
    endpoint_id: str = Field(foreign_key="webhook_endpoints.id", max_length=40)
    event_id: str = Field(max_length=40)
    event_type: str = Field(max_length=64)
    attempt: int
    status_code: int | None = None
    latency_ms: int = 0
    error: str | None = Field(default=None, max_length=500)
    succeeded: bool = False
    created_at: datetime = _ts(nullable=False, default=utcnow)


# --- billing guards: open Checkout Sessions, billing incidents (app/billing; migration 0010) ---


class CheckoutSession(SQLModel, table=True):
    """A Stripe Checkout Session opened for an account and plan: reused while it is open (so
    repeated checkouts and followed upgrade links make one session), closed by its
    `checkout.session.completed|expired` webhook or by its stored expiry."""

    __tablename__ = "checkout_sessions"
    __table_args__ = (sa.Index("ix_checkout_sessions_open", "account_id", "plan_code", "status"),)

    id: str = Field(primary_key=True, max_length=255)  # Stripe's `cs_…`
    account_id: str = Field(foreign_key="accounts.id", max_length=40)
    plan_code: str = Field(max_length=32)
    url: str = Field(max_length=2048)
    status: str = Field(default="open", max_length=16)  # open | complete | expired
    expires_at: datetime = _ts(nullable=False)
    created_at: datetime = _ts(nullable=False, default=utcnow)


class BillingIncident(SQLModel, table=True):
    """Something billing fixed on its own that the founder should know about, e.g. a second paid
    subscription of one account, cancelled and refunded. One row per (kind, subscription): a
    retried webhook finds it and never cancels or refunds twice."""

    __tablename__ = "billing_incidents"
    __table_args__ = (sa.UniqueConstraint("kind", "subscription_id"),)

    id: str = Field(primary_key=True, max_length=40)  # inc_…
    kind: str = Field(max_length=40)  # duplicate_subscription
    account_id: str = Field(foreign_key="accounts.id", index=True, max_length=40)
    stripe_customer_id: str | None = Field(default=None, max_length=64)
    subscription_id: str = Field(max_length=64)  # the one acted on (cancelled)
    kept_subscription_id: str | None = Field(default=None, max_length=64)
    event_id: str | None = Field(default=None, max_length=255)  # the webhook that found it
    cancel_status: str = Field(max_length=80)  # cancelled | already_ended | failed: <code>
    refund_status: str = Field(max_length=80)  # refunded | nothing_paid | failed: <code> | ...
    refunded_amount: int = Field(default=0, sa_type=sa.BigInteger)  # minor units
    currency: str | None = Field(default=None, max_length=3)
    refund_ids: list[str] = Field(
        default_factory=list, sa_column=sa.Column(sa.JSON, nullable=False)
    )
    created_at: datetime = _ts(nullable=False, default=utcnow)


# --- developer portal: sign-in links and browser sessions (app/portal; migration 0013) ---


class PortalLoginLink(SQLModel, table=True):
    """A sign-in link sent by email: only its token's SHA-256 is stored; used once, 15 minutes."""

    __tablename__ = "portal_login_links"

    token_hash: str = Field(primary_key=True, max_length=64)
    email: str = Field(max_length=254, index=True)
    created_at: datetime = _ts(nullable=False, default=utcnow)
    expires_at: datetime = _ts(nullable=False)
    used_at: datetime | None = _ts(nullable=True)


class PortalSession(SQLModel, table=True):
    """A signed-in browser: only the cookie's SHA-256 is stored; ends at `expires_at`, at sign
    out, or when its account signs out everywhere."""

    __tablename__ = "portal_sessions"

    id_hash: str = Field(primary_key=True, max_length=64)
    account_id: str = Field(foreign_key="accounts.id", index=True, max_length=40)
    created_at: datetime = _ts(nullable=False, default=utcnow)
    expires_at: datetime = _ts(nullable=False)
