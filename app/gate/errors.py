"""Errors the gate answers with (SPEC §5, "Status codes of the gate")."""

from __future__ import annotations

from app.core.errors import AppError


class MissingApiKey(AppError):
    status_code = 401
    code = "missing_api_key"
    default_message = "Send your API key in the X-API-Key header."


class InvalidApiKey(AppError):
    status_code = 401
    code = "invalid_api_key"
    default_message = "The API key is unknown or has been revoked."


class TooManyInvalidKeys(AppError):
    status_code = 429
    code = "too_many_invalid_keys"
    default_message = (
        "Too many requests with unknown API keys from this address; retry after the Retry-After "
        "delay."
    )


class KeySuspended(AppError):
    status_code = 403
    code = "key_suspended"
    default_message = "This API key has been suspended; contact support."


class FeatureNotInPlan(AppError):
    status_code = 403
    code = "feature_not_in_plan"
    default_message = "Your plan does not include this endpoint; upgrade to use it."


class PaymentRequired(AppError):
    status_code = 402
    code = "payment_required"
    default_message = "Your subscription payment is overdue; update your payment method."


class RateLimitExceeded(AppError):
    status_code = 429
    code = "rate_limit_exceeded"
    default_message = "Per-minute request limit reached; retry after the Retry-After delay."


class QuotaExceeded(AppError):
    status_code = 429
    code = "quota_exceeded"
    default_message = "Monthly quota used up; upgrade your plan or wait for the period to reset."


class CostExceedsRateLimit(AppError):
    status_code = 422
    code = "cost_exceeds_rate_limit"
    default_message = "This request costs more units than your plan allows per minute."


class RetryShortly(AppError):
    status_code = 503
    code = "retry_shortly"
    default_message = "Your key's policy is changing at this moment; retry in a second."

    def __init__(self, message: str | None = None, **extra: object) -> None:
        super().__init__(message, headers={"Retry-After": "1"}, **extra)


class RateLimiterUnavailable(AppError):
    status_code = 503
    code = "rate_limiter_unavailable"
    default_message = "The rate limiter is unavailable; retry shortly."


class AdminRequired(AppError):
    status_code = 403
    code = "admin_required"
    default_message = "This endpoint is for the operator (admin key or admin role) only."
