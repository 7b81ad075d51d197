#!/usr/bin/env bash
# MCP conformance: the official suite (npm @modelcontextprotocol/conformance) against `POST /mcp`
# of the app served by uvicorn on a free loopback port, on the embedded default (a SQLite file in
# a temp dir, in-process Redis, the sample catalog). Runs the server scenarios that apply to a
# stateless, tools-only server and fails on any failure among them; every other scenario is
# skipped, each with its reason in docs/mcp-conformance.md. A scenario this script does not know
# (a new suite version) fails the run until it is classified.
#
# Needs: npm (any node; the suite needs Node >= 22, installed into a cache when the system's is
# older), network to npm (first run), and the project venv (.venv), which scripts/test.sh
# creates. Tools go to a cache outside the repo (~/.cache/agentmall); nothing is left in the repo.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
started=$SECONDS

die() { echo "FAIL  $*" >&2; exit 1; }
step() { echo "==> $*"; }

CONFORMANCE_VERSION=0.1.16 # pinned: a new version brings new scenarios to classify
NODE_MAJOR=22
# The scenarios that apply to this server (stateless Streamable HTTP, JSON responses, tools only).
APPLICABLE=(server-initialize ping tools-list dns-rebinding-protection)
# The others: why each is skipped is in docs/mcp-conformance.md (one line each).
SKIPPED=(
  logging-set-level completion-complete
  tools-call-simple-text tools-call-image tools-call-audio tools-call-embedded-resource
  tools-call-mixed-content tools-call-with-logging tools-call-error tools-call-with-progress
  tools-call-sampling tools-call-elicitation json-schema-2020-12
  elicitation-sep1034-defaults elicitation-sep1330-enums
  server-sse-polling server-sse-multiple-streams
  resources-list resources-read-text resources-read-binary resources-templates-read
  resources-subscribe resources-unsubscribe
  prompts-list prompts-get-simple prompts-get-with-args prompts-get-embedded-resource
  prompts-get-with-image
)

[ -x .venv/bin/python ] || die ".venv is missing: run scripts/test.sh (or scripts/dev.sh) first"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/agentmall"
NODE_DIR="$CACHE/node$NODE_MAJOR"
SUITE_DIR="$CACHE/mcp-conformance"
SUITE_PACKAGE="{\"private\": true, \"dependencies\": {\"@modelcontextprotocol/conformance\": \"$CONFORMANCE_VERSION\"}}"
CONFORMANCE="$SUITE_DIR/node_modules/.bin/conformance"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/agentmall-mcp-conformance.XXXXXX")
server_pid=""
cleanup() {
  local status=$?
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

node_major() { "$1" -e 'console.log(parseInt(process.versions.node, 10))' 2>/dev/null || echo 0; }

# --- tools (cached; a warm run installs nothing) ------------------------------------------------
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
if command -v flock >/dev/null; then flock 9; fi # one install into the cache at a time
if command -v node >/dev/null && [ "$(node_major node)" -ge "$NODE_MAJOR" ]; then
  NODE_BIN=$(dirname "$(command -v node)")
else
  NODE_BIN="$NODE_DIR/node_modules/.bin"
  if [ "$(node_major "$NODE_BIN/node")" -lt "$NODE_MAJOR" ]; then
    command -v npm >/dev/null || die "npm is not on PATH (needed to install Node $NODE_MAJOR)"
    step "installing Node $NODE_MAJOR (npm package node@$NODE_MAJOR) into $NODE_DIR"
    rm -rf "$NODE_DIR" && mkdir -p "$NODE_DIR"
    echo '{"private": true}' >"$NODE_DIR/package.json"
    (cd "$NODE_DIR" && npm install --no-audit --no-fund --loglevel=error "node@$NODE_MAJOR" \
      </dev/null >"$WORK/npm-node.log" 2>&1) ||
      { tail -30 "$WORK/npm-node.log" >&2; die "npm install node@$NODE_MAJOR failed"; }
    [ "$(node_major "$NODE_BIN/node")" -ge "$NODE_MAJOR" ] || die "node@$NODE_MAJOR does not run"
  fi
fi
export PATH="$NODE_BIN:$PATH" # the suite's `#!/usr/bin/env node` and npm's scripts use it
if [ "$(cat "$SUITE_DIR/package.json" 2>/dev/null)" != "$SUITE_PACKAGE" ] ||
  [ "$("$CONFORMANCE" --version 2>/dev/null)" != "$CONFORMANCE_VERSION" ]; then
  step "installing @modelcontextprotocol/conformance@$CONFORMANCE_VERSION into $SUITE_DIR"
  rm -rf "$SUITE_DIR" && mkdir -p "$SUITE_DIR"
  printf '%s\n' "$SUITE_PACKAGE" >"$SUITE_DIR/package.json"
  (cd "$SUITE_DIR" && npm install --no-audit --no-fund --loglevel=error </dev/null \
    >"$WORK/npm-suite.log" 2>&1) ||
    { tail -30 "$WORK/npm-suite.log" >&2; die "npm install of the conformance suite failed"; }
fi
exec 9>&-
echo "  ok    tools: node $(node --version), conformance $("$CONFORMANCE" --version)"

# Every scenario of this version is either run or skipped for a documented reason.
mapfile -t listed < <("$CONFORMANCE" list --server | sed -n 's/^ *- \([a-z0-9-]*\).*/\1/p')
[ "${#listed[@]}" -gt 0 ] || die "conformance list --server listed no scenarios"
known=" ${APPLICABLE[*]} ${SKIPPED[*]} "
for scenario in "${listed[@]}"; do
  [[ "$known" == *" $scenario "* ]] ||
    die "scenario $scenario is new: run it, then add it to APPLICABLE or SKIPPED (and the docs)"
done

# --- the app, on the embedded default -----------------------------------------------------------
step "serving the app (embedded SQLite + in-process Redis)"
port=$(.venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# From the temp dir, so a developer's .env is not read; no real database, Redis or Vercel.
(cd "$WORK" && exec env -u REDIS_URL -u UPSTASH_REDIS_REST_URL -u UPSTASH_REDIS_REST_TOKEN \
  -u VERCEL -u VERCEL_ENV DATABASE_URL="sqlite:///$WORK/agentmall.db" \
  "$ROOT/.venv/bin/uvicorn" --app-dir "$ROOT" api.index:app --host 127.0.0.1 --port "$port" \
  --log-level warning --no-access-log </dev/null >"$WORK/server.log" 2>&1) &
server_pid=$!
url="http://127.0.0.1:$port"
for _ in $(seq 1 120); do
  if ! kill -0 "$server_pid" 2>/dev/null; then
    tail -40 "$WORK/server.log" >&2
    die "the app stopped during start-up (log above)"
  fi
  if .venv/bin/python -c "import sys, urllib.request; sys.exit(urllib.request.urlopen('$url/v1/health', timeout=2).status != 200)" 2>/dev/null; then
    break
  fi
  sleep 0.5
done
.venv/bin/python -c "import urllib.request; urllib.request.urlopen('$url/v1/health', timeout=2)" 2>/dev/null ||
  { tail -40 "$WORK/server.log" >&2; die "the app did not answer $url/v1/health within 60 s"; }
echo "  ok    $url"

# --- the scenarios ------------------------------------------------------------------------------
step "conformance $CONFORMANCE_VERSION: ${#APPLICABLE[@]} applicable server scenarios against $url/mcp"
passed=0
failed=0
checks=0
for scenario in "${APPLICABLE[@]}"; do
  log="$WORK/$scenario.log"
  if NO_COLOR=1 FORCE_COLOR=0 timeout 60 "$CONFORMANCE" server --url "$url/mcp" \
    --scenario "$scenario" -o "$WORK/results" </dev/null >"$log" 2>&1; then
    passed=$((passed + 1))
    summary=$(sed -n 's/^Passed: \([0-9]*\)\/\([0-9]*\),.*/\1/p' "$log" | tail -1)
    checks=$((checks + ${summary:-0}))
    echo "  ok    $scenario ($(grep -m1 '^Passed:' "$log" || echo 'no summary'))"
  else
    failed=$((failed + 1))
    echo "  FAIL  $scenario" >&2
    sed 's/\x1b\[[0-9;]*m//g; s/^/        /' "$log" >&2 # without the colours it prints anyway
  fi
done
skipped=$(( ${#listed[@]} - ${#APPLICABLE[@]} ))
echo "conformance: $passed passed ($checks checks), $failed failed, $skipped skipped (not" \
  "applicable: docs/mcp-conformance.md) in $((SECONDS - started)) s"
if [ "$failed" -gt 0 ]; then
  echo "--- server log" >&2
  tail -40 "$WORK/server.log" >&2
  exit 1
fi
