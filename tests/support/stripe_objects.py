"""Stripe's example API objects (from Stripe's public OpenAPI fixtures), as test data.

Tests shape every mocked Stripe answer and every webhook payload from these, overriding only the
fields a test cares about, so the code is exercised against the shapes Stripe really sends.
Copied once from `shared/reference/stripe-openapi-fixtures3.json`; tests never read that file.
"""

# ruff: noqa: E501

from __future__ import annotations

import copy
import secrets
import time
from typing import Any

_PRODUCT: dict[str, Any] = {
    "active": True,
    "created": 1234567890,
    "default_price": "price_1PgafmB7WZ01zgkW02Hf9z6c",
    "description": "Comfortable gray cotton t-shirt",
    "id": "prod_QXg1hqf4jFNsqG",
    "images": [],
    "livemode": False,
    "marketing_features": [],
    "metadata": {},
    "name": "T-shirt",
    "object": "product",
    "package_dimensions": {
        "height": 1221029593,
        "length": 1106363674,
        "weight": 791592328,
        "width": 113126854,
    },
    "shippable": None,
    "statement_descriptor": None,
    "tax_code": None,
    "unit_label": None,
    "updated": 1234567890,
    "url": None,
    "type": "good",
}

_PRICE: dict[str, Any] = {
    "active": True,
    "billing_scheme": "per_unit",
    "created": 1234567890,
    "currency": "usd",
    "custom_unit_amount": {"maximum": None, "minimum": None, "preset": None},
    "id": "price_1PgafmB7WZ01zgkW6dKueIc5",
    "livemode": False,
    "lookup_key": None,
    "metadata": {},
    "nickname": None,
    "object": "price",
    "product": "prod_QXg1hqf4jFNsqG",
    "recurring": {
        "interval": "month",
        "interval_count": 1,
        "meter": None,
        "usage_type": "licensed",
        "trial_period_days": None,
    },
    "tax_behavior": "unspecified",
    "tiers_mode": None,
    "transform_quantity": {"divide_by": 1592560163, "round": "down"},
    "type": "recurring",
    "unit_amount": 2000,
    "unit_amount_decimal": "2000",
}

_METER: dict[str, Any] = {
    "created": 1234567890,
    "customer_mapping": {"event_payload_key": "customer", "type": "by_id"},
    "default_aggregation": {"formula": "sum"},
    "display_name": "test-meter",
    "event_name": "test-meter-event-name",
    "event_time_window": None,
    "id": "meter_123",
    "livemode": True,
    "object": "billing.meter",
    "status": "active",
    "status_transitions": {"deactivated_at": None},
    "updated": 1234567890,
    "value_settings": {"event_payload_key": "value"},
}

_METER_EVENT: dict[str, Any] = {
    "created": 1234567890,
    "event_name": "api_request",
    "identifier": "1234-1234",
    "livemode": False,
    "object": "billing.meter_event",
    "payload": {"stripe_customer_id": "cus_123", "value": "25"},
    "timestamp": 1234567890,
}

_CUSTOMER: dict[str, Any] = {
    "address": {
        "city": None,
        "country": None,
        "line1": None,
        "line2": None,
        "postal_code": None,
        "state": None,
    },
    "balance": 0,
    "created": 1234567890,
    "currency": "usd",
    "default_source": None,
    "delinquent": False,
    "description": None,
    "discount": {
        "checkout_session": None,
        "customer": None,
        "end": None,
        "id": "obj_123",
        "invoice": None,
        "invoice_item": None,
        "object": "discount",
        "promotion_code": None,
        "start": 109757538,
        "subscription": None,
        "subscription_item": None,
        "source": {"coupon": None, "type": "coupon"},
        "customer_account": None,
    },
    "email": None,
    "id": "cus_QXg1o8vcGmoR32",
    "invoice_prefix": "7FE1103",
    "invoice_settings": {
        "custom_fields": None,
        "default_payment_method": None,
        "footer": None,
        "rendering_options": {"amount_tax_display": None, "template": None},
    },
    "livemode": False,
    "metadata": {},
    "name": None,
    "next_invoice_sequence": 1,
    "object": "customer",
    "phone": None,
    "preferred_locales": [],
    "shipping": {},
    "tax_exempt": "none",
    "test_clock": None,
}

_CHECKOUT_SESSION: dict[str, Any] = {
    "after_expiration": {
        "recovery": {
            "allow_promotion_codes": True,
            "enabled": True,
            "expires_at": None,
            "url": None,
        }
    },
    "allow_promotion_codes": None,
    "amount_subtotal": None,
    "amount_total": None,
    "automatic_tax": {
        "enabled": False,
        "liability": {"type": "account"},
        "status": None,
        "provider": None,
    },
    "billing_address_collection": None,
    "cancel_url": "https://example.com/cancel",
    "client_reference_id": None,
    "client_secret": None,
    "consent": {"promotions": None, "terms_of_service": None},
    "consent_collection": {
        "payment_method_reuse_agreement": {"position": "hidden"},
        "promotions": None,
        "terms_of_service": None,
    },
    "created": 1234567890,
    "currency": None,
    "custom_fields": [],
    "custom_text": {
        "after_submit": {"message": "message"},
        "shipping_address": {"message": "message"},
        "submit": {"message": "message"},
        "terms_of_service_acceptance": {"message": "message"},
    },
    "customer": None,
    "customer_creation": None,
    "customer_details": {
        "address": {
            "city": None,
            "country": None,
            "line1": None,
            "line2": None,
            "postal_code": None,
            "state": None,
        },
        "email": "example@example.com",
        "name": None,
        "phone": None,
        "tax_exempt": "none",
        "tax_ids": None,
        "business_name": None,
        "individual_name": None,
    },
    "customer_email": None,
    "expires_at": 1234567890,
    "id": "cs_test_a1YS1URlnyQCN5fUUduORoQ7Pw41PJqDWkIVQCpJPqkfIhd6tVY8XB1OLY",
    "invoice": None,
    "invoice_creation": {
        "enabled": True,
        "invoice_data": {
            "account_tax_ids": None,
            "custom_fields": None,
            "description": None,
            "footer": None,
            "issuer": {"type": "account"},
            "metadata": None,
            "rendering_options": {"amount_tax_display": None, "template": None},
        },
    },
    "livemode": False,
    "locale": None,
    "metadata": {},
    "mode": "payment",
    "object": "checkout.session",
    "payment_intent": "pi_1PgafyB7WZ01zgkWSjxsAJo3",
    "payment_link": None,
    "payment_method_collection": None,
    "payment_method_configuration_details": {"id": "obj_123", "parent": None},
    "payment_method_options": {},
    "payment_method_types": ["card"],
    "payment_status": "unpaid",
    "phone_number_collection": {"enabled": False},
    "recovered_from": None,
    "saved_payment_method_options": {
        "allow_redisplay_filters": None,
        "payment_method_remove": None,
        "payment_method_save": None,
    },
    "setup_intent": None,
    "shipping_address_collection": {"allowed_countries": ["SC"]},
    "shipping_cost": {
        "amount_subtotal": 1555417355,
        "amount_tax": 1424534716,
        "amount_total": 1117121693,
        "shipping_rate": None,
    },
    "shipping_options": [],
    "status": "open",
    "submit_type": None,
    "subscription": None,
    "success_url": "https://example.com/success",
    "total_details": {
        "amount_discount": 406046392,
        "amount_shipping": None,
        "amount_tax": 1424534716,
    },
    "ui_mode": None,
    "url": "https://checkout.stripe.com/pay/c/cs_test_a1YS1URlnyQCN5fUUduORoQ7Pw41PJqDWkIVQCpJPqkfIhd6tVY8XB1OLY",
    "adaptive_pricing": {"enabled": True},
    "discounts": None,
    "collected_information": {
        "shipping_details": {
            "address": {
                "city": None,
                "country": None,
                "line1": None,
                "line2": None,
                "postal_code": None,
                "state": None,
            },
            "name": "name",
        },
        "business_name": None,
        "individual_name": None,
    },
    "permissions": {"update_shipping_details": None},
    "wallet_options": {},
    "origin_context": None,
    "currency_conversion": {
        "amount_subtotal": 1555417355,
        "amount_total": 1117121693,
        "fx_rate": "291452898",
        "source_currency": "usd",
    },
    "customer_account": None,
    "integration_identifier": None,
    "managed_payments": {"enabled": True},
}

_SUBSCRIPTION: dict[str, Any] = {
    "application": None,
    "application_fee_percent": None,
    "automatic_tax": {"enabled": False, "liability": {"type": "account"}, "disabled_reason": None},
    "billing_cycle_anchor": 1234567890,
    "billing_cycle_anchor_config": {
        "day_of_month": 1361669285,
        "hour": None,
        "minute": None,
        "month": None,
        "second": None,
    },
    "cancel_at": 1234567890,
    "canceled_at": 1234567890,
    "cancellation_details": {"comment": None, "feedback": None, "reason": None},
    "collection_method": "charge_automatically",
    "created": 1234567890,
    "currency": "usd",
    "customer": "cus_QXg1o8vcGmoR32",
    "days_until_due": None,
    "default_payment_method": None,
    "default_source": None,
    "default_tax_rates": [],
    "description": None,
    "discounts": [],
    "ended_at": 1234567890,
    "id": "sub_1Pgc6rB7WZ01zgkWNy0Cn5nw",
    "invoice_settings": {
        "account_tax_ids": None,
        "issuer": {"type": "self"},
        "custom_fields": None,
        "description": None,
        "footer": None,
    },
    "items": {
        "data": [
            {
                "created": 1721954054,
                "discounts": [],
                "id": "si_QXhVnC2h0Jczwc",
                "metadata": {},
                "object": "subscription_item",
                "price": {
                    "active": True,
                    "billing_scheme": "per_unit",
                    "created": 1721948530,
                    "currency": "usd",
                    "custom_unit_amount": {"maximum": None, "minimum": None, "preset": None},
                    "id": "price_1PgafmB7WZ01zgkW6dKueIc5",
                    "livemode": False,
                    "lookup_key": None,
                    "metadata": {},
                    "nickname": None,
                    "object": "price",
                    "product": "prod_QXg1hqf4jFNsqG",
                    "recurring": {
                        "interval": "month",
                        "interval_count": 1,
                        "meter": None,
                        "usage_type": "licensed",
                        "trial_period_days": None,
                    },
                    "tax_behavior": "unspecified",
                    "tiers_mode": None,
                    "transform_quantity": {"divide_by": 1592560163, "round": "down"},
                    "type": "recurring",
                    "unit_amount": 2000,
                    "unit_amount_decimal": "2000",
                },
                "quantity": 1,
                "subscription": "sub_1Pgc6rB7WZ01zgkWNy0Cn5nw",
                "tax_rates": [],
                "plan": {
                    "active": True,
                    "amount": None,
                    "amount_decimal": None,
                    "billing_scheme": "tiered",
                    "created": 1028554472,
                    "currency": "currency",
                    "id": "obj_123",
                    "interval": "month",
                    "interval_count": 797691627,
                    "livemode": True,
                    "metadata": None,
                    "meter": None,
                    "nickname": None,
                    "object": "plan",
                    "product": None,
                    "tiers_mode": None,
                    "transform_usage": {"divide_by": 1592560163, "round": "down"},
                    "trial_period_days": None,
                    "usage_type": "licensed",
                },
                "current_period_end": 976287773,
                "current_period_start": 1896570518,
                "billing_thresholds": {"usage_gte": None},
            }
        ],
        "has_more": False,
        "object": "list",
        "url": "/v1/subscription_items?subscription=sub_1Pgc6rB7WZ01zgkWNy0Cn5nw",
    },
    "latest_invoice": None,
    "livemode": False,
    "metadata": {},
    "next_pending_invoice_item_invoice": 1234567890,
    "object": "subscription",
    "on_behalf_of": None,
    "pause_collection": {"behavior": "mark_uncollectible", "resumes_at": None},
    "payment_settings": {
        "payment_method_options": {
            "acss_debit": {},
            "bancontact": {"preferred_language": "fr"},
            "card": {"network": None, "request_three_d_secure": None},
            "customer_balance": {"funding_type": None},
            "konbini": {},
            "sepa_debit": {},
            "us_bank_account": {},
            "payto": {},
            "pix": {},
            "upi": {},
        },
        "payment_method_types": None,
        "save_default_payment_method": None,
    },
    "pending_invoice_item_interval": {"interval": "month", "interval_count": 797691627},
    "pending_setup_intent": None,
    "pending_update": {
        "billing_cycle_anchor": None,
        "discount": {
            "checkout_session": None,
            "customer": None,
            "end": None,
            "id": "obj_123",
            "invoice": None,
            "invoice_item": None,
            "object": "discount",
            "promotion_code": None,
            "start": 109757538,
            "subscription": None,
            "subscription_item": None,
            "source": {"coupon": None, "type": "coupon"},
            "customer_account": None,
        },
        "discounts": [],
        "expires_at": 833811170,
        "subscription_items": None,
        "trial_end": None,
        "trial_from_plan": None,
        "metadata": None,
    },
    "schedule": None,
    "start_date": 1234567890,
    "status": "active",
    "test_clock": None,
    "transfer_data": {
        "amount_percent": None,
        "destination": {"id": "obj_123", "object": "account"},
    },
    "trial_end": 1234567890,
    "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
    "trial_start": 1234567890,
    "cancel_at_period_end": True,
    "billing_thresholds": {"amount_gte": None, "reset_billing_cycle_anchor": None},
    "billing_mode": {"type": "classic", "flexible": {}},
    "customer_account": None,
    "managed_payments": {"enabled": True},
    "billing_schedules": [
        {
            "applies_to": None,
            "bill_until": {
                "computed_timestamp": 2082605468,
                "duration": {"interval": "month", "interval_count": None},
                "timestamp": None,
                "type": "duration",
            },
            "key": "key",
        }
    ],
}

_INVOICE: dict[str, Any] = {
    "account_country": "US",
    "account_name": None,
    "account_tax_ids": None,
    "amount_due": 1000,
    "amount_paid": 0,
    "amount_remaining": 1000,
    "amount_shipping": 0,
    "application": None,
    "attempt_count": 0,
    "attempted": False,
    "auto_advance": False,
    "automatic_tax": {
        "enabled": False,
        "liability": {"type": "account"},
        "status": None,
        "disabled_reason": None,
        "provider": None,
    },
    "billing_reason": "manual",
    "collection_method": "charge_automatically",
    "created": 1234567890,
    "currency": "usd",
    "custom_fields": None,
    "customer": "cus_QXg1o8vcGmoR32",
    "customer_address": {
        "city": None,
        "country": None,
        "line1": None,
        "line2": None,
        "postal_code": None,
        "state": None,
    },
    "customer_email": None,
    "customer_name": None,
    "customer_phone": None,
    "customer_shipping": {},
    "customer_tax_exempt": "none",
    "customer_tax_ids": [],
    "default_payment_method": None,
    "default_source": None,
    "default_tax_rates": [],
    "description": None,
    "discounts": [],
    "due_date": 1234567890,
    "effective_at": 1234567890,
    "ending_balance": None,
    "footer": None,
    "from_invoice": {"action": "action", "invoice": "invoice"},
    "hosted_invoice_url": None,
    "id": "in_1Pgc6tB7WZ01zgkWu9fdqL6I",
    "invoice_pdf": None,
    "issuer": {"type": "self"},
    "last_finalization_error": {"type": "idempotency_error"},
    "latest_revision": None,
    "lines": {
        "data": [
            {
                "amount": 1000,
                "currency": "usd",
                "description": "My First Invoice Item (created for API docs)",
                "discount_amounts": [],
                "discountable": True,
                "discounts": [],
                "id": "il_1Pgc6sB7WZ01zgkWFnxLrLCq",
                "invoice": "in_1Pgc6tB7WZ01zgkWu9fdqL6I",
                "livemode": False,
                "metadata": {},
                "object": "line_item",
                "period": {"end": 1721954054, "start": 1721954054},
                "quantity": 1,
                "subscription": None,
                "pretax_credit_amounts": None,
                "taxes": None,
                "parent": {
                    "invoice_item_details": {
                        "invoice_item": "invoice_item",
                        "proration": True,
                        "proration_details": {
                            "credited_items": {
                                "invoice": "invoice",
                                "invoice_line_items": ["invoice_line_items"],
                            }
                        },
                        "subscription": None,
                    },
                    "subscription_item_details": {
                        "invoice_item": None,
                        "proration": True,
                        "proration_details": {
                            "credited_items": {
                                "invoice": "invoice",
                                "invoice_line_items": ["invoice_line_items"],
                            }
                        },
                        "subscription": "subscription",
                        "subscription_item": "subscription_item",
                    },
                    "type": "invoice_item_details",
                },
                "pricing": {"type": "price_details", "unit_amount_decimal": None},
                "subtotal": 2060319484,
                "quantity_decimal": None,
            }
        ],
        "has_more": False,
        "object": "list",
        "url": "/v1/invoices/in_1Pgc6tB7WZ01zgkWu9fdqL6I/lines",
    },
    "livemode": False,
    "metadata": {},
    "next_payment_attempt": 1234567890,
    "number": None,
    "object": "invoice",
    "on_behalf_of": None,
    "payment_settings": {
        "default_mandate": None,
        "payment_method_options": {
            "acss_debit": {},
            "bancontact": {"preferred_language": "fr"},
            "card": {"request_three_d_secure": None},
            "customer_balance": {"funding_type": None},
            "konbini": {},
            "sepa_debit": {},
            "us_bank_account": {},
            "payto": {},
            "pix": {"amount_includes_iof": None},
            "upi": {},
        },
        "payment_method_types": None,
    },
    "period_end": 1234567890,
    "period_start": 1234567890,
    "post_payment_credit_notes_amount": 0,
    "pre_payment_credit_notes_amount": 0,
    "receipt_number": None,
    "rendering": {
        "amount_tax_display": None,
        "pdf": {"page_size": None},
        "template": None,
        "template_version": None,
    },
    "shipping_cost": {
        "amount_subtotal": 1555417355,
        "amount_tax": 1424534716,
        "amount_total": 1117121693,
        "shipping_rate": None,
    },
    "shipping_details": {},
    "starting_balance": 0,
    "statement_descriptor": None,
    "status": "draft",
    "status_transitions": {
        "finalized_at": None,
        "marked_uncollectible_at": None,
        "paid_at": None,
        "voided_at": None,
    },
    "subscription": None,
    "subtotal": 1000,
    "subtotal_excluding_tax": 1000,
    "test_clock": None,
    "total": 1000,
    "total_discount_amounts": [],
    "total_excluding_tax": 1000,
    "webhooks_delivered_at": 1234567890,
    "automatically_finalizes_at": None,
    "total_pretax_credit_amounts": None,
    "total_taxes": None,
    "amount_overpaid": 149300825,
    "parent": {
        "quote_details": {"quote": "quote"},
        "subscription_details": {"metadata": None, "subscription": "subscription"},
        "type": "quote_details",
    },
    "customer_account": None,
}

_PORTAL_SESSION: dict[str, Any] = {
    "configuration": "bpc_1Pgc7HB7WZ01zgkWxH2EPWRX",
    "created": 1234567890,
    "customer": "cus_QXg1o8vcGmoR32",
    "flow": {
        "after_completion": {
            "hosted_confirmation": {"custom_message": None},
            "redirect": {"return_url": "return_url"},
            "type": "hosted_confirmation",
        },
        "subscription_cancel": {
            "retention": {"coupon_offer": {"coupon": "coupon"}, "type": "coupon_offer"},
            "subscription": "subscription",
        },
        "subscription_update": {"subscription": "subscription"},
        "subscription_update_confirm": {
            "discounts": None,
            "items": [{"id": None, "price": None}],
            "subscription": "subscription",
        },
        "type": "subscription_update",
    },
    "id": "bps_1Pgc7HB7WZ01zgkWNs8s9Auh",
    "livemode": True,
    "locale": None,
    "object": "billing_portal.session",
    "on_behalf_of": None,
    "return_url": "https://example.com/account",
    "url": "https://sangeekp-15t6ai--customer_portal-mydev.dev.stripe.me/session/{SESSION_SECRET}",
    "customer_account": None,
}

_EVENT: dict[str, Any] = {
    "api_version": None,
    "created": 1234567890,
    "data": {
        "object": {
            "active": True,
            "aggregate_usage": None,
            "amount": 2000,
            "amount_decimal": "2000",
            "billing_scheme": "per_unit",
            "created": 1721948530,
            "currency": "usd",
            "id": "price_1PgafmB7WZ01zgkW6dKueIc5",
            "interval": "month",
            "interval_count": 1,
            "livemode": False,
            "metadata": {},
            "meter": None,
            "nickname": None,
            "object": "plan",
            "product": "prod_QXg1hqf4jFNsqG",
            "tiers_mode": None,
            "transform_usage": None,
            "trial_period_days": None,
            "usage_type": "licensed",
        }
    },
    "id": "evt_1Pgc76B7WZ01zgkWwyRHS12y",
    "livemode": False,
    "object": "event",
    "pending_webhooks": 0,
    "request": {"id": None, "idempotency_key": None},
    "type": "plan.created",
}


_INVOICE_PAYMENT: dict[str, Any] = {
    "amount_paid": None,
    "amount_requested": 1112626247,
    "created": 1028554472,
    "currency": "currency",
    "id": "obj_123",
    "invoice": "invoice",
    "is_default": True,
    "livemode": True,
    "object": "invoice_payment",
    "payment": {"type": "payment_intent"},
    "status": "status",
    "status_transitions": {"canceled_at": None, "paid_at": None},
}

_REFUND: dict[str, Any] = {
    "amount": 100,
    "balance_transaction": None,
    "charge": "ch_1PgafuB7WZ01zgkWXYmPNZs8",
    "created": 1234567890,
    "currency": "usd",
    "destination_details": {"card": {"type": "reversal"}, "type": "card"},
    "id": "re_1Pgc72B7WZ01zgkWqPvrRrPE",
    "metadata": {},
    "object": "refund",
    "payment_intent": None,
    "reason": None,
    "receipt_number": None,
    "source_transfer_reversal": None,
    "status": "succeeded",
    "transfer_reversal": None,
    "customer": None,
    "customer_account": None,
    "payment_method": None,
}


def _make(base: dict[str, Any], prefix: str, overrides: dict[str, Any]) -> dict[str, Any]:
    obj = copy.deepcopy(base)
    obj["id"] = f"{prefix}_{secrets.token_hex(8)}" if prefix else obj.get("id")
    obj["created"] = int(time.time())
    obj["livemode"] = False
    obj.update(overrides)
    return obj


def product(**overrides: Any) -> dict[str, Any]:
    return _make(_PRODUCT, "prod", overrides)


def price(**overrides: Any) -> dict[str, Any]:
    return _make(_PRICE, "price", overrides)


def meter(**overrides: Any) -> dict[str, Any]:
    return _make(_METER, "mtr", overrides)


def meter_event(**overrides: Any) -> dict[str, Any]:
    obj = _make(_METER_EVENT, "", overrides)
    obj.pop("id", None)
    return obj


def customer(**overrides: Any) -> dict[str, Any]:
    return _make(_CUSTOMER, "cus", overrides)


def checkout_session(**overrides: Any) -> dict[str, Any]:
    return _make(_CHECKOUT_SESSION, "cs_test", overrides)


def subscription(**overrides: Any) -> dict[str, Any]:
    return _make(_SUBSCRIPTION, "sub", overrides)


def invoice(**overrides: Any) -> dict[str, Any]:
    return _make(_INVOICE, "in", overrides)


def invoice_payment(**overrides: Any) -> dict[str, Any]:
    """An invoice's payment (API 2025-03-31+: invoices no longer carry `charge`/`payment_intent`)."""
    return _make(_INVOICE_PAYMENT, "inpay", overrides)


def refund(**overrides: Any) -> dict[str, Any]:
    return _make(_REFUND, "re", overrides)


def portal_session(**overrides: Any) -> dict[str, Any]:
    return _make(_PORTAL_SESSION, "bps", overrides)


def event(event_type: str, obj: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """A webhook event carrying `obj` (a dict shaped like Stripe's object)."""
    return _make(_EVENT, "evt", {"type": event_type, "data": {"object": obj}, **overrides})


def listing(data: list[dict[str, Any]], url: str, *, has_more: bool = False) -> dict[str, Any]:
    """A Stripe list object."""
    return {"object": "list", "data": data, "has_more": has_more, "url": url}


def search_result(data: list[dict[str, Any]], url: str) -> dict[str, Any]:
    return {
        "object": "search_result",
        "data": data,
        "has_more": False,
        "url": url,
        "next_page": None,
    }
