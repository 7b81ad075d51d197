"""Vercel function: Stripe webhooks (`/v1/stripe/webhook` is rewritten here by vercel.json).

Built with the cyclic collector paused, then frozen, as the API function (app/core/startup.py).
`app` is assigned at the top level: Vercel finds a function's entrypoint only there.
"""

from app.core.startup import collector_paused

with collector_paused():
    from app.billing.webhook_app import create_webhook_app

    built = create_webhook_app()

app = built
