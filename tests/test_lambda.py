"""The AWS Lambda entrypoint (`app/aws_lambda.py`): API Gateway HTTP API (payload 2.0) events in,
Lambda proxy responses out, through `handler(event, context)` exactly as Lambda calls it.

`app.aws_lambda` builds its app at import, from the environment (`get_settings()`, cached per
process), and Mangum runs the app on an event loop of its own (`run_until_complete`, lifespan
startup and shutdown around every invocation). So each test imports it in a fresh interpreter
whose environment holds only the settings, as a Lambda cold start would, and sends it several
events in a row, as a warm container would. Importing it here instead would mean patching the
environment, clearing the settings cache, reloading the module and running Mangum's loop from
inside pytest-asyncio's running one, and would leave all of that behind for the other tests.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from httpx import AsyncClient
from pydantic import SecretStr

from app.core.config import Settings
from tests.conftest import ROOT
from tests.support.factories import ADMIN, make_account, product

# Reads the events (a JSON list) on stdin, calls the handler once per event in this one process,
# prints the responses (a JSON list) as the last line of stdout.
INVOKE = """\
import json, sys

from app.aws_lambda import handler

class Context:
    function_name = "agentmall"
    aws_request_id = "req-test"
    def get_remaining_time_in_millis(self):
        return 30_000

events = json.load(sys.stdin)
print(json.dumps([handler(event, Context()) for event in events]))
"""

# The settings a deployment would set; everything else keeps its default.
DEPLOYED = (
    "DATABASE_URL",
    "REDIS_URL",
    "UPSTASH_REDIS_REST_URL",
    "UPSTASH_REDIS_REST_TOKEN",
    "REDIS_KEY_PREFIX",
    "ADMIN_API_KEY",
    "CRON_SECRET",
    "LOAD_SAMPLE_CATALOG",
)
SOURCE_IP = "198.51.100.23"


def http_api_event(
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    query: str = "",
    body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An API Gateway HTTP API event, payload format 2.0 (`$default` route, `$default` stage)."""
    host = "abc123xyz.execute-api.eu-west-1.amazonaws.com"
    all_headers = {
        "accept": "application/json",
        "host": host,
        "user-agent": "pytest",
        "x-forwarded-for": SOURCE_IP,
        "x-forwarded-port": "443",
        "x-forwarded-proto": "https",
        **(headers or {}),
    }
    if body is not None:
        all_headers["content-type"] = "application/json"
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": all_headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123xyz",
            "domainName": host,
            "domainPrefix": "abc123xyz",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": SOURCE_IP,
                "userAgent": "pytest",
            },
            "requestId": "JKJaXmPLvHcESHA=",
            "routeKey": "$default",
            "stage": "$default",
            "time": "01/Dec/2026:12:00:00 +0000",
            "timeEpoch": 1796126400000,
        },
        "body": json.dumps(body) if body is not None else None,
        "isBase64Encoded": False,
    }


def deployed_env(settings: Settings) -> dict[str, str]:
    env = {}
    for name in DEPLOYED:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if value is not None:
            env[name] = str(value).lower() if isinstance(value, bool) else str(value)
    return env


def invoke(
    events: list[dict[str, Any]], settings_env: dict[str, str], cwd: Path
) -> list[dict[str, Any]]:
    """Import `app.aws_lambda` in a new interpreter with only `settings_env` as settings and
    call its handler with each event in turn; the decoded Lambda responses."""
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **settings_env}
    done = subprocess.run(
        [sys.executable, "-c", INVOKE],
        input=json.dumps(events),
        cwd=cwd,  # no .env there
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    responses: list[dict[str, Any]] = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(responses) == len(events)
    return responses


def body_of(response: dict[str, Any]) -> Any:
    assert response["isBase64Encoded"] is False
    assert response["headers"]["content-type"].startswith("application/json")
    return json.loads(response["body"])


async def seed(client: AsyncClient, sku: str) -> str:
    """One product and a fresh key on the free plan, through this process's app; the key."""
    created = await client.put(
        "/v1/admin/products",
        json={"products": [product(sku, name="Lambda lamp", price_cents=4200, stock=7)]},
        headers=ADMIN,
    )
    assert created.status_code == 200, created.text
    _, key = await make_account(client)
    return key


def assert_metered(first: dict[str, Any], later: dict[str, Any]) -> None:
    """`later` was counted against the same monthly quota as `first`, right after it."""
    for response in (first, later):
        assert response["statusCode"] == 200, response
        assert "x-ratelimit-degraded" not in response["headers"], response["headers"]
    remaining = int(first["headers"]["x-quota-remaining"])
    assert int(later["headers"]["x-quota-remaining"]) == remaining - 1


async def test_lambda_handler_serves_a_keyed_product_read_and_refuses_a_missing_key(
    client: AsyncClient, settings: Settings, tmp_path: Path
) -> None:
    """PostgreSQL and Redis (by URL, and Upstash REST): the key and the product are created
    through the API of this process; the Lambda process reads them through its handler."""
    sku = "LAMBDA-0001"
    key = await seed(client, sku)
    path = f"/v1/products/{sku}"
    events = [http_api_event("GET", path, headers={"x-api-key": key}), http_api_event("GET", path)]

    keyed, keyless = await asyncio.to_thread(invoke, events, deployed_env(settings), tmp_path)

    assert keyed["statusCode"] == 200, keyed
    item = body_of(keyed)
    assert item["sku"] == sku
    assert item["name"] == "Lambda lamp"
    assert item["price_cents"] == 4200
    assert item["stock"] == 7
    assert keyed["headers"]["x-quota-remaining"] == "999"  # the free plan's 1,000, less this call
    assert keyless["statusCode"] == 401, keyless
    error = body_of(keyless)
    assert error["error"] == "missing_api_key"
    assert isinstance(error["message"], str) and error["message"]
    assert "detail" not in error


async def test_a_warm_lambda_container_keeps_metering(
    client: AsyncClient,
    settings: Settings,
    backend: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    """Mangum (lifespan="auto") runs the app's lifespan around every invocation; the next
    invocation in the same container must still count its call, not fail open
    (`x-ratelimit-degraded`). It did with Upstash while the shutdown closed its client after each
    invocation (fixed by `create_app(per_invocation=True)`)."""
    sku = "LAMBDA-0002"
    key = await seed(client, sku)
    read = http_api_event("GET", f"/v1/products/{sku}", headers={"x-api-key": key})

    first, second = await asyncio.to_thread(invoke, [read, read], deployed_env(settings), tmp_path)

    assert body_of(first)["sku"] == body_of(second)["sku"] == sku
    assert_metered(first, second)


def test_lambda_handler_on_the_embedded_default(tmp_path: Path) -> None:
    """No settings at all: the SQLite file (in the working directory) migrates itself and loads
    the sample catalog on the first invocation; sign-up, list and read all go through Lambda,
    from three cold starts on the same file."""
    signup = [http_api_event("POST", "/v1/signup", body={"email": "lambda@example.com"})]
    (created,) = invoke(signup, {}, tmp_path)
    assert created["statusCode"] == 201, created
    assert (tmp_path / "agentmall.db").exists()
    keyed = {"x-api-key": body_of(created)["api_key"]}

    listed, keyless, listed_again = invoke(
        [
            http_api_event("GET", "/v1/products", headers=keyed, query="limit=1"),
            http_api_event("GET", "/v1/products", query="limit=1"),
            http_api_event("GET", "/v1/products", headers=keyed, query="limit=1"),
        ],
        {},
        tmp_path,
    )
    assert listed["statusCode"] == 200, listed
    (first,) = body_of(listed)["data"]
    assert keyless["statusCode"] == 401, keyless
    assert body_of(keyless)["error"] == "missing_api_key"
    assert_metered(listed, listed_again)

    (detail,) = invoke(
        [http_api_event("GET", f"/v1/products/{first['sku']}", headers=keyed)], {}, tmp_path
    )
    assert detail["statusCode"] == 200, detail
    assert body_of(detail)["sku"] == first["sku"]
    assert "stock" in body_of(detail)
