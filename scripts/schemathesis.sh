#!/usr/bin/env bash
# Schemathesis against the real app: uvicorn on a free port, real PostgreSQL (a dedicated database,
# dropped, re-created and migrated with Alembic on every run) and real Redis (a unique key prefix,
# deleted afterwards). Two runs, `--checks all` each: the API with a paid (pro) key, then the
# founder's `/v1/admin` paths with the admin key. Exits non-zero on any failure.
#
# Left out: POST /mcp, which the MCP conformance suite checks (one operation carrying JSON-RPC;
# its schema says nothing of the methods inside). The Stripe webhook, cron jobs and portal pages
# are not in the OpenAPI document. Stripe-dependent billing endpoints stay in: without Stripe
# settings they answer a documented 503. scripts/schemathesis.toml says which refusals the
# schema cannot express (opaque cursors, signed links, SSRF-checked URLs), operation by operation.
# Extra arguments are passed to both runs (e.g. --include-path /v1/keys, --phases fuzzing).
#
# Environment: SCHEMATHESIS_MAX_EXAMPLES (default 30: about a minute here), SCHEMATHESIS_SEED,
# PG_ADMIN_URL, REDIS_URL. Needs the .venv that scripts/test.sh builds (requirements-dev.txt).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CI=true

PY=.venv/bin/python
[ -x "$PY" ] && [ -x .venv/bin/schemathesis ] || {
  echo "error: .venv lacks schemathesis; run scripts/test.sh (or pip install -r requirements-dev.txt)" >&2
  exit 2
}

PG_ADMIN_URL=${PG_ADMIN_URL:-postgresql://postgres@127.0.0.1:5432/postgres}
DB_NAME=agentmall_schemathesis
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/0}
MAX_EXAMPLES=${SCHEMATHESIS_MAX_EXAMPLES:-30}
SEED=${SCHEMATHESIS_SEED:-$RANDOM}
PREFIX="st:$(date +%s)-$$:"
PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE="http://127.0.0.1:$PORT"
WORK=$(mktemp -d)

export DATABASE_URL="${PG_ADMIN_URL%/*}/$DB_NAME"
export REDIS_URL REDIS_KEY_PREFIX="$PREFIX"
export UPSTASH_REDIS_REST_URL="" UPSTASH_REDIS_REST_TOKEN=""
export ADMIN_API_KEY="st-admin-$("$PY" -c 'import secrets; print(secrets.token_hex(16))')"
export CRON_SECRET="st-cron-$("$PY" -c 'import secrets; print(secrets.token_hex(16))')"
export LOAD_SAMPLE_CATALOG=false PUBLIC_BASE_URL="$BASE" RATE_LIMIT_FAILURE_MODE=closed
export STRIPE_SECRET_KEY="" STRIPE_WEBHOOK_SECRET="" SMTP_URL=""
# The fuzzer is one client sending thousands of requests: the per-address floods guards would
# answer nearly everything with a (documented) 429 and test nothing else.
export SIGNUPS_PER_IP_PER_HOUR=10000 PUBLIC_REQUESTS_PER_IP_PER_MINUTE=100000
export INVALID_KEYS_PER_IP_PER_MINUTE=100000 SIGN_IN_LINKS_PER_IP_PER_HOUR=10000
export BILLING_REQUESTS_PER_ACCOUNT_PER_HOUR=10000 BILLING_REQUESTS_PER_IP_PER_HOUR=100000

server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  "$PY" - <<'EOF' || true
import os, redis
client = redis.Redis.from_url(os.environ["REDIS_URL"])
keys = list(client.scan_iter(match=os.environ["REDIS_KEY_PREFIX"] + "*", count=1000))
if keys:
    client.delete(*keys)
EOF
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "==> database $DB_NAME (fresh, migrated)" >&2
"$PY" - <<EOF
import asyncio, asyncpg
async def main():
    conn = await asyncpg.connect("$PG_ADMIN_URL")
    await conn.execute('DROP DATABASE IF EXISTS "$DB_NAME" WITH (FORCE)')
    await conn.execute('CREATE DATABASE "$DB_NAME"')
    await conn.close()
asyncio.run(main())
EOF
.venv/bin/alembic upgrade head </dev/null

echo "==> serving on $BASE" >&2
.venv/bin/uvicorn api.index:app --host 127.0.0.1 --port "$PORT" --log-level warning \
  </dev/null >"$WORK/server.log" 2>&1 &
server_pid=$!
up() { "$PY" -c "import httpx; httpx.get('$BASE/v1/health', timeout=1).raise_for_status()" 2>/dev/null; }
for _ in $(seq 1 60); do
  up && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.5
done
up || { echo "error: the app did not start" >&2; cat "$WORK/server.log" >&2; exit 1; }

echo "==> products, and a pro account" >&2
PRO_KEY=$("$PY" - <<'EOF'
import os, httpx
base, admin = os.environ["PUBLIC_BASE_URL"], {"X-API-Key": os.environ["ADMIN_API_KEY"]}
with httpx.Client(base_url=base, timeout=30) as http:
    products = [
        {"sku": f"ST-{i:03d}", "name": f"Schemathesis product {i}", "category": "gadgets",
         "price_cents": 1000 + i, "attributes": {"color": "black", "ram_gb": 8 * (i % 4 + 1)},
         "stock": i}
        for i in range(20)
    ]
    http.put("/v1/admin/products", json={"products": products}, headers=admin).raise_for_status()
    # The pro plan's per-minute limit is for agents, not for a fuzzer (this database only).
    http.put("/v1/admin/plans/pro", json={"requests_per_minute": 100000}, headers=admin).raise_for_status()
    signup = http.post("/v1/signup", json={"email": "schemathesis@example.com"})
    signup.raise_for_status()
    account = signup.json()
    http.put(f"/v1/admin/accounts/{account['account_id']}/plan", json={"plan": "pro"},
             headers=admin).raise_for_status()
    print(account["api_key"])
EOF
)

ROOT=$PWD CONFIG="$PWD/scripts/schemathesis.toml"
COMMON=(--checks all --max-examples "$MAX_EXAMPLES" --seed "$SEED" --workers 2
  --generation-database none --request-timeout 20 --no-color
  --exclude-path /mcp)
# Run from the scratch directory: Schemathesis keeps a cache of failures in its working directory.
st() { (cd "$WORK" && "$ROOT/.venv/bin/schemathesis" --config-file "$CONFIG" "$@"); }
status=0
echo "==> schemathesis: API with a pro key (seed $SEED)" >&2
st run "$BASE/openapi.json" "${COMMON[@]}" \
  --exclude-path-regex '^/v1/admin/' -H "X-API-Key: $PRO_KEY" "$@" </dev/null || status=1
echo "==> schemathesis: /v1/admin with the admin key (seed $SEED)" >&2
st run "$BASE/openapi.json" "${COMMON[@]}" \
  --include-path-regex '^/v1/admin/' -H "X-API-Key: $ADMIN_API_KEY" "$@" </dev/null || status=1

if [ "$status" -ne 0 ]; then
  echo "==> server log (tail)" >&2
  tail -n 50 "$WORK/server.log" >&2
fi
exit "$status"
