"""Errors the billing endpoints answer with."""

from __future__ import annotations

from app.core.errors import AppError, Conflict


class BillingNotConfigured(AppError):
    status_code = 503
    code = "billing_not_configured"
    default_message = "Billing is not configured on this deployment (no STRIPE_SECRET_KEY)."


class BillingNotBootstrapped(AppError):
    status_code = 503
    code = "billing_not_bootstrapped"
    default_message = "Stripe products are not set up yet; the operator must run the bootstrap."


class StripeUnavailable(AppError):
    status_code = 502
    code = "stripe_unavailable"
    default_message = "Stripe did not answer; retry in a moment."


class PlanNotPurchasable(AppError):
    status_code = 422
    code = "plan_not_purchasable"
    default_message = "This plan cannot be bought through Checkout."


class NoSubscription(Conflict):
    code = "no_subscription"
    default_message = "This account has never had a paid subscription; upgrade first."


class InvalidUpgradeLink(AppError):
    status_code = 400
    code = "invalid_upgrade_link"
    default_message = (
        "This upgrade link is invalid or has expired; ask the API again for a new one."
    )


class AlreadySubscribed(Conflict):
    code = "already_subscribed"
    default_message = "This account already has a paid subscription; manage it in the portal."


class PlanAssignedByFounder(Conflict):
    code = "plan_assigned_by_founder"
    default_message = (
        "This account is on a plan the founder assigned (a contract); it cannot be changed "
        "through Checkout. Contact support to change it."
    )


class AccountSuspended(AppError):
    status_code = 403
    code = "account_suspended"
    default_message = "This account is suspended; billing links are disabled. Contact support."


class KeySuspended(AppError):
    status_code = 403
    code = "key_suspended"
    default_message = (
        "A key of this account is suspended; its upgrade link is disabled. Contact support."
    )


class IncidentNotFound(AppError):
    status_code = 404
    code = "incident_not_found"
    default_message = "No billing incident with this id."
