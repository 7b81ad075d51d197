"""AWS Lambda entrypoint for the same app (Vercel never uses this file: it lives outside api/)."""

from mangum import Mangum

from app.main import create_app

handler = Mangum(create_app(), lifespan="auto")
