"""What Vercel deploys: two functions, their routes, and crons that name real jobs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from app.cron import JOBS

ROOT = Path(__file__).resolve().parent.parent


def test_vercel_json_declares_both_functions_their_rewrites_and_every_cron() -> None:
    config = json.loads((ROOT / "vercel.json").read_text())
    assert set(config["functions"]) == {"api/index.py", "api/stripe_webhook.py"}
    rewrites = [(r["source"], r["destination"]) for r in config["rewrites"]]
    # first match wins: the webhook's own function before the API's catch-all; MCP is the API's
    assert rewrites == [
        ("/v1/stripe/webhook", "/api/stripe_webhook"),
        ("/mcp", "/api/index"),
        ("/v1/:path*", "/api/index"),
    ]
    crons = {c["path"].rsplit("/", 1)[1] for c in config["crons"]}
    assert crons == set(JOBS)
    assert crons == {"rollup-usage", "flush-usage", "notify-usage", "deliver-webhooks"}


def test_the_webhook_function_imports_no_catalog_or_gate_code() -> None:
    script = (
        "import sys, api.stripe_webhook as w; "
        "print(','.join(sorted(m for m in sys.modules if m.startswith("
        "('app.catalog', 'app.gate', 'app.usage.service', 'app.main')))))"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    loaded = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert loaded == ""
