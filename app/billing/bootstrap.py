"""The Stripe bootstrap: `python -m app.billing.bootstrap` (run once per Stripe account, and again
after editing Pro's prices in the plans table).

Creates or updates, idempotently, what billing needs in Stripe, in this order:
1. the product `agentmall_pro` (a fixed id: retrieved, created if missing, renamed or reactivated
   when it differs);
2. the Billing Meter for `agentmall_api_call` (sum of `value`, customer by `stripe_customer_id`),
   found among the existing meters before one is created;
3. the prices `agentmall_pro_monthly` (flat, monthly) and `agentmall_pro_overage` (metered on the
   meter, per call), found by `lookup_key`. Stripe prices are immutable: when one no longer matches
   the plans table, a new price takes over the lookup key (`transfer_lookup_key`) and the old one
   is archived (existing subscriptions keep it until they are moved to the new one).
Then it stores the ids in `billing_settings` and prints them, with the webhook to register.

The plans table stays the source of truth for quotas: only calls beyond Pro's included calls are
sent to the meter, so changing the quota changes what is billed without touching Stripe.

Exit codes: 0 done (running it again creates nothing); 2 nothing stored, with one line on stderr
naming the problem (no STRIPE_SECRET_KEY, no `pro` plan, invalid settings, Stripe or database
error). Whatever was created before a Stripe error is found again by the next run.
"""

import argparse
import asyncio
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal, TextIO

import stripe
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from stripe.params import (
    PriceCreateParams,
    PriceCreateParamsRecurring,
    ProductCreateParams,
    ProductUpdateParams,
)
from stripe.params.billing import MeterCreateParams

from app.accounts.repository import get_plan
from app.billing import repository
from app.billing.stripe_client import build_stripe
from app.billing.stripe_objects import (
    METER_EVENT_NAME,
    MONTHLY_LOOKUP_KEY,
    OVERAGE_LOOKUP_KEY,
    PRODUCT_ID,
    WEBHOOK_EVENTS,
    WEBHOOK_PATH,
)
from app.core.config import Settings, get_settings
from app.core.db import Database
from app.models import Plan

EXIT_OK, EXIT_FAILED = 0, 2
PLAN_CODE = "pro"
METER_DISPLAY_NAME = "AgentMall API calls beyond the included quota"
CUSTOMER_KEY = "stripe_customer_id"
METER_VALUE_KEY = "value"

Action = Literal["created", "updated", "unchanged", "replaced", "reactivated"]
UsageType = Literal["licensed", "metered"]


class BootstrapError(Exception):
    """A problem the operator must fix before the bootstrap can run (the message says which)."""


@dataclass(frozen=True)
class ProTerms:
    """What the plans table says Pro costs (read once, before any Stripe call)."""

    name: str
    currency: str
    monthly_cents: int
    overage_cents_per_call: Decimal
    included_calls: int


@dataclass(frozen=True)
class PriceSpec:
    """The price a lookup key must point at."""

    lookup_key: str
    nickname: str
    product: str
    currency: str
    cents: Decimal  # per month (licensed) or per call (metered)
    usage_type: UsageType
    meter: str | None = None


@dataclass(frozen=True)
class Outcome:
    """What the bootstrap did to one Stripe object."""

    label: str
    object_id: str
    action: Action
    detail: str = ""
    note: str = ""


def cents_per_call(overage_cents_per_1000: int) -> Decimal:
    """Cents per call from the plans table's cents per 1,000 calls (200 → 0.2)."""
    value = (Decimal(overage_cents_per_1000) / 1000).normalize()
    return Decimal(format(value, "f"))  # never an exponent ("1E+1"): Stripe wants plain digits


def pro_terms(plan: Plan | None) -> ProTerms:
    """Pro's billable terms, or BootstrapError when the plan is missing or not billable."""
    if plan is None:
        raise BootstrapError(f"plan '{PLAN_CODE}' not found: run `alembic upgrade head` first")
    if not plan.monthly_price_cents or plan.overage_cents_per_1000 is None:
        raise BootstrapError(
            f"plan '{PLAN_CODE}' needs monthly_price_cents and overage_cents_per_1000"
        )
    return ProTerms(
        name=plan.name,
        currency=plan.currency.lower(),
        monthly_cents=plan.monthly_price_cents,
        overage_cents_per_call=cents_per_call(plan.overage_cents_per_1000),
        included_calls=plan.included_calls,
    )


async def load_terms(database: Database) -> ProTerms:
    """Read Pro from the plans table (a short unit of work, closed before calling Stripe)."""
    plan = None
    async with database.unit() as session:
        plan = await get_plan(session, PLAN_CODE)
    return pro_terms(plan)


async def ensure_product(client: stripe.StripeClient, terms: ProTerms) -> Outcome:
    """The Pro product under its fixed id: created, or renamed/reactivated to match."""
    name = f"AgentMall {terms.name}"
    try:
        product = await client.v1.products.retrieve_async(PRODUCT_ID)
    except stripe.InvalidRequestError as exc:
        if exc.code != "resource_missing":
            raise
        params: ProductCreateParams = {
            "id": PRODUCT_ID,
            "name": name,
            "metadata": {"plan": PLAN_CODE},
        }
        await client.v1.products.create_async(params)
        return Outcome("product", PRODUCT_ID, "created", name)
    changes: ProductUpdateParams = {}
    if product.name != name:
        changes["name"] = name
    if not product.active:
        changes["active"] = True
    if not changes:
        return Outcome("product", PRODUCT_ID, "unchanged", name)
    await client.v1.products.update_async(PRODUCT_ID, changes)
    return Outcome("product", PRODUCT_ID, "updated", name, f"changed {', '.join(changes)}")


def meter_problems(meter: stripe.billing.Meter) -> list[str]:
    """How an existing meter differs from what metering sends (meters cannot be edited)."""
    mapping = meter.customer_mapping
    pairs: list[tuple[str, object, object]] = [
        (
            "customer_mapping",
            f"{mapping.type}/{mapping.event_payload_key}",
            "by_id/" + CUSTOMER_KEY,
        ),
        ("default_aggregation", meter.default_aggregation.formula, "sum"),
        ("value_settings", meter.value_settings.event_payload_key, METER_VALUE_KEY),
        ("event_time_window", meter.event_time_window, None),
    ]
    return [f"{name} {have} (want {want})" for name, have, want in pairs if have != want]


async def find_meters(client: stripe.StripeClient) -> list[stripe.billing.Meter]:
    """Every meter (active or not) whose event name is ours, walking all pages."""
    page = await client.v1.billing.meters.list_async({"limit": 100})
    return [
        meter async for meter in page.auto_paging_iter() if meter.event_name == METER_EVENT_NAME
    ]


async def ensure_meter(client: stripe.StripeClient) -> Outcome:
    """The Billing Meter: an existing matching one (reactivated if needed), else a new one."""
    meters = await find_meters(client)
    for meter in (m for m in meters if m.status == "active"):
        if problems := meter_problems(meter):
            raise BootstrapError(
                f"meter {meter.id} for '{METER_EVENT_NAME}' differs: {'; '.join(problems)}. "
                "Meters cannot be edited: deactivate it in the Stripe Dashboard and re-run"
            )
        return Outcome("meter", meter.id, "unchanged", f"event {METER_EVENT_NAME}")
    for meter in (m for m in meters if not meter_problems(m)):
        await client.v1.billing.meters.reactivate_async(meter.id)
        return Outcome("meter", meter.id, "reactivated", f"event {METER_EVENT_NAME}")
    params: MeterCreateParams = {
        "display_name": METER_DISPLAY_NAME,
        "event_name": METER_EVENT_NAME,
        "default_aggregation": {"formula": "sum"},
        "customer_mapping": {"type": "by_id", "event_payload_key": CUSTOMER_KEY},
        "value_settings": {"event_payload_key": METER_VALUE_KEY},
    }
    meter = await client.v1.billing.meters.create_async(params)
    return Outcome("meter", meter.id, "created", f"event {METER_EVENT_NAME}")


def monthly_spec(terms: ProTerms, product_id: str) -> PriceSpec:
    """The flat monthly subscription price."""
    return PriceSpec(
        lookup_key=MONTHLY_LOOKUP_KEY,
        nickname=f"AgentMall {terms.name} monthly",
        product=product_id,
        currency=terms.currency,
        cents=Decimal(terms.monthly_cents),
        usage_type="licensed",
    )


def overage_spec(terms: ProTerms, product_id: str, meter_id: str) -> PriceSpec:
    """The metered per-call price (no free tier: only calls past the quota reach the meter)."""
    return PriceSpec(
        lookup_key=OVERAGE_LOOKUP_KEY,
        nickname=f"AgentMall {terms.name} overage per call",
        product=product_id,
        currency=terms.currency,
        cents=terms.overage_cents_per_call,
        usage_type="metered",
        meter=meter_id,
    )


def price_amount(price: stripe.Price) -> Decimal | None:
    """A price's amount in cents (Stripe sends both forms for per-unit prices)."""
    if price.unit_amount_decimal is not None:
        return Decimal(price.unit_amount_decimal)
    return None if price.unit_amount is None else Decimal(price.unit_amount)


def price_differences(spec: PriceSpec, price: stripe.Price) -> list[str]:
    """How an existing price differs from the spec; empty when it can be kept."""
    rec = price.recurring
    pairs: list[tuple[str, object, object]] = [
        ("amount (cents)", price_amount(price), spec.cents),
        ("currency", price.currency, spec.currency),
        ("product", price.product, spec.product),
        ("meter", rec.meter if rec else None, spec.meter),
        ("usage_type", rec.usage_type if rec else None, spec.usage_type),
        ("interval", f"{rec.interval_count} {rec.interval}" if rec else None, "1 month"),
        ("billing_scheme", price.billing_scheme, "per_unit"),
        ("transform_quantity", price.transform_quantity, None),
    ]
    return [f"{name} {have} → {want}" for name, have, want in pairs if have != want]


def price_params(spec: PriceSpec) -> PriceCreateParams:
    """Create parameters; the lookup key always moves here (an archived price may hold it)."""
    recurring: PriceCreateParamsRecurring = {"interval": "month", "usage_type": spec.usage_type}
    params: PriceCreateParams = {
        "product": spec.product,
        "currency": spec.currency,
        "lookup_key": spec.lookup_key,
        "transfer_lookup_key": True,
        "nickname": spec.nickname,
        "metadata": {"plan": PLAN_CODE},
        "recurring": recurring,
    }
    if spec.meter is not None:
        recurring["meter"] = spec.meter
    if spec.usage_type == "metered":
        params["unit_amount_decimal"] = spec.cents
    else:
        params["unit_amount"] = int(spec.cents)
    return params


def describe(spec: PriceSpec) -> str:
    """The amount as the founder reads it ("49.00 USD / month", "0.002 USD per call")."""
    currency = spec.currency.upper()
    if spec.usage_type == "licensed":
        return f"{spec.cents / 100:.2f} {currency} / month"
    return f"{format((spec.cents / 100).normalize(), 'f')} {currency} per call"


async def find_price(client: stripe.StripeClient, lookup_key: str) -> stripe.Price | None:
    """The active price holding a lookup key (Stripe keeps lookup keys unique)."""
    page = await client.v1.prices.list_async({"lookup_keys": [lookup_key], "active": True})
    return page.data[0] if page.data else None


async def ensure_price(client: stripe.StripeClient, label: str, spec: PriceSpec) -> Outcome:
    """The price behind a lookup key: kept when it matches, else created (or replaced)."""
    existing = await find_price(client, spec.lookup_key)
    differences = price_differences(spec, existing) if existing else []
    if existing is not None and not differences:
        return Outcome(label, existing.id, "unchanged", describe(spec))
    price = await client.v1.prices.create_async(price_params(spec))
    if existing is None:
        return Outcome(label, price.id, "created", describe(spec))
    await client.v1.prices.update_async(existing.id, {"active": False})
    note = (
        f"replaces {existing.id} ({'; '.join(differences)}), now archived; existing "
        f"subscriptions keep {existing.id} until moved to {price.id}"
    )
    return Outcome(label, price.id, "replaced", describe(spec), note)


@dataclass(frozen=True)
class Report:
    """Everything the bootstrap did, for the summary."""

    terms: ProTerms
    outcomes: list[Outcome]
    stored: int


async def bootstrap(client: stripe.StripeClient, database: Database) -> Report:
    """Make Stripe match the plans table, then store the ids."""
    terms = await load_terms(database)
    product = await ensure_product(client, terms)
    meter = await ensure_meter(client)
    monthly = await ensure_price(client, "monthly price", monthly_spec(terms, product.object_id))
    overage_price = overage_spec(terms, product.object_id, meter.object_id)
    overage = await ensure_price(client, "overage price", overage_price)
    ids = {
        repository.PRODUCT_ID: product.object_id,
        repository.METER_ID: meter.object_id,
        repository.METER_EVENT_NAME: METER_EVENT_NAME,
        repository.MONTHLY_PRICE_ID: monthly.object_id,
        repository.METERED_PRICE_ID: overage.object_id,
    }
    async with database.unit() as session:
        await repository.put_settings(session, ids)
    return Report(terms, [product, meter, monthly, overage], stored=len(ids))


def render(report: Report, settings: Settings) -> str:
    """The summary printed for the operator."""
    key = settings.STRIPE_SECRET_KEY.get_secret_value() if settings.STRIPE_SECRET_KEY else ""
    mode = "live" if "_live_" in key else "test"
    lines = [f"Stripe bootstrap ({mode} mode), plan '{PLAN_CODE}':"]
    for item in report.outcomes:
        lines.append(f"  {item.label:<14} {item.object_id:<32} {item.action:<11} {item.detail}")
        if item.note:
            lines.append(f"  {'':<14} {item.note}")
    lines += [
        f"Stored {report.stored} values in billing_settings.",
        "",
        f"Overage: only calls beyond {report.terms.name}'s {report.terms.included_calls:,} "
        "included calls are sent to the meter,",
        "so the price in Stripe has no free tier: edit the included calls in the plans table and",
        "billing follows with nothing to change in Stripe (re-run this after editing a price).",
        "",
        "Register this webhook endpoint in Stripe (Dashboard > Developers > Webhooks):",
        f"  URL:    {settings.PUBLIC_BASE_URL}{WEBHOOK_PATH}",
        "  events:",
        *(f"    {event}" for event in WEBHOOK_EVENTS),
        "then set STRIPE_WEBHOOK_SECRET to the endpoint's signing secret (whsec_...).",
    ]
    if "://localhost" in settings.PUBLIC_BASE_URL or "://127.0.0.1" in settings.PUBLIC_BASE_URL:
        lines.append("note: PUBLIC_BASE_URL is local; set it to your deployment's URL first.")
    return "\n".join(lines)


def first_line(exc: BaseException) -> str:
    """An exception's first line (messages stay on one line)."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def one_line(exc: stripe.StripeError) -> str:
    """A Stripe error on one line (its network errors span several: the cause is the last)."""
    return " ".join(str(exc).split()) or type(exc).__name__


async def run(settings: Settings, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run the bootstrap with these settings; returns the exit code."""
    out, err = out or sys.stdout, err or sys.stderr
    client = build_stripe(settings)
    if client is None:
        print("error: STRIPE_SECRET_KEY is not set (sk_test_... or sk_live_...)", file=err)
        return EXIT_FAILED
    database = Database(settings)
    try:
        report = await bootstrap(client, database)
    except BootstrapError as exc:
        print(f"error: {exc}", file=err)
        return EXIT_FAILED
    except stripe.StripeError as exc:
        print(f"error: Stripe: {one_line(exc)} (nothing stored; re-run when fixed)", file=err)
        return EXIT_FAILED
    except (SQLAlchemyError, OSError) as exc:
        print(f"error: database: {first_line(exc)}", file=err)
        return EXIT_FAILED
    finally:
        await database.dispose()
    print(render(report, settings), file=out)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """The command line entry point; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m app.billing.bootstrap",
        description="Create or update AgentMall's Stripe product, prices and meter (idempotent).",
    )
    parser.parse_args(argv)
    try:
        settings = get_settings()
    except ValidationError as exc:  # settings from the environment; never echo their values
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        print(f"error: invalid settings: {problems}", file=sys.stderr)
        return EXIT_FAILED
    return asyncio.run(run(settings))


if __name__ == "__main__":
    raise SystemExit(main())
