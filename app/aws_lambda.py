"""AWS Lambda entrypoint for the same app (Vercel never uses this file: it lives outside api/).

Mangum runs the ASGI lifespan around every invocation: the app starts once per container and
keeps its clients (Upstash, the PostgreSQL pool) open between invocations (`per_invocation`).
"""

from mangum import Mangum

from app.main import create_app

handler = Mangum(create_app(per_invocation=True), lifespan="auto")
