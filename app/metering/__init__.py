"""Metered overage billing: billable Pro usage reaches the Stripe meter as aggregated events.

The cron `GET /v1/internal/cron/flush-usage` calls `service.flush`; nothing here runs on the
request path.
"""
