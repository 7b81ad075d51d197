"""Vercel function: Stripe webhooks (`/v1/stripe/webhook` is rewritten here by vercel.json)."""

from app.billing.webhook_app import create_webhook_app

app = create_webhook_app()
