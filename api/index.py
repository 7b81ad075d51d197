"""Vercel function: the whole API (every /v1/* path is rewritten here by vercel.json).

The imports and the app are built with the cyclic collector paused, then frozen
(app/core/startup.py): the collections an import would run cost 10–15 % of the cold start.
`app` is assigned at the top level: Vercel finds a function's entrypoint only there.
"""

from app.core.startup import collector_paused

with collector_paused():
    from app.main import create_app

    built = create_app()

app = built
