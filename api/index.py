"""Vercel function: the whole API (every /v1/* path is rewritten here by vercel.json)."""

from app.main import create_app

app = create_app()
