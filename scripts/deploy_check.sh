#!/usr/bin/env bash
# Deploy check: build the project with the real Vercel CLI, offline (no account, no token), assert
# on the build output, then serve the built functions under Vercel's own Python runtime with no
# settings and call them. Catches what unit tests cannot: a function Vercel drops, a rewrite or
# cron lost, source or secrets published as static files, a dependency missing from the bundle.
#
# Needs: node >= 20 + npm, network to npm and PyPI (first run), and the project venv (.venv with
# Python 3.12), which scripts/test.sh creates; CI runs that first. Tools go to a cache outside the
# repo; the only files left in the repo are under .vercel/ (gitignored).
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS

die() { echo "FAIL  $*" >&2; exit 1; }
step() { echo "==> $*"; }

[ -x .venv/bin/python ] || die ".venv is missing: run scripts/test.sh (or scripts/dev.sh) first"
PYTHON=.venv/bin/python
"$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' ||
  die ".venv is not Python 3.12 (Vercel's default runtime, and the bundle's wheels are cp312)"
command -v npm >/dev/null || die "npm is not on PATH (node >= 20 is needed for the Vercel CLI)"
node -e 'process.exit(parseInt(process.versions.node) < 20 ? 1 : 0)' || die "node >= 20 is needed"

CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/agentmall"
CLI_DIR="$CACHE/vercel-cli"
TOOLS="$CACHE/tools" # a venv holding uv, which the Python builder needs on PATH
VERCEL="$CLI_DIR/node_modules/.bin/vercel"
# vercel@64 depends on sandbox@4.4.0, which is not on npm; 4.5.0 is (see shared NOTES.md).
CLI_PACKAGE='{"private": true, "dependencies": {"vercel": "64"}, "overrides": {"sandbox": "4.5.0"}}'
LOCAL_PROJECT='{"projectId":"prj_local","orgId":"team_local","settings":{"framework":null}}'
# The real interpreter behind .venv: the build's Python, and the base of the runtime's venv.
BASE_PYTHON=$("$PYTHON" -c 'import sys; print(sys._base_executable)')

WORK=$(mktemp -d "${TMPDIR:-/tmp}/agentmall-deploy-check.XXXXXX")
helper_pid=""
cleanup() {
  local status=$?
  # The helper stops its runtime itself; if it was killed hard, stop the runtime's group here.
  if [ -n "$helper_pid" ]; then kill "$helper_pid" 2>/dev/null || true; wait "$helper_pid" 2>/dev/null || true; fi
  for pidfile in "$WORK"/*/runtime.pid; do
    [ -f "$pidfile" ] && kill -KILL -- "-$(cat "$pidfile")" 2>/dev/null || true
  done
  # A developer's linked project (`vercel link`) gets its project.json back.
  if [ -f "$WORK/project.json.saved" ]; then cp "$WORK/project.json.saved" .vercel/project.json; fi
  # The build compiled our modules in place as unchecked-hash .pyc, which Python would keep
  # running after the next edit of their source: remove them (on failure too).
  "$PYTHON" scripts/deploy_check.py clean-bytecode || { [ "$status" -ne 0 ] || status=1; }
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Run the helper in the background and wait: bash runs a trap only between commands, so a TERM
# during a foreground child would wait for that child (and its runtime) to finish first.
helper() {
  "$PYTHON" scripts/deploy_check.py "$@" &
  helper_pid=$!
  wait "$helper_pid"
  helper_pid=""
}

# --- tools (cached; a warm run installs nothing) ------------------------------------------------
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
# Two checks at once must not install into the same cache concurrently.
if command -v flock >/dev/null; then flock 9; fi
if [ "$(cat "$CLI_DIR/package.json" 2>/dev/null)" != "$CLI_PACKAGE" ] ||
  ! "$VERCEL" --version >/dev/null 2>&1; then
  step "installing the Vercel CLI (vercel@64) into $CLI_DIR"
  rm -rf "$CLI_DIR" && mkdir -p "$CLI_DIR"
  printf '%s\n' "$CLI_PACKAGE" >"$CLI_DIR/package.json"
  (cd "$CLI_DIR" && npm install --no-audit --no-fund --loglevel=error >"$WORK/npm.log" 2>&1) ||
    { tail -30 "$WORK/npm.log" >&2; die "npm install of the Vercel CLI failed"; }
fi
if ! "$TOOLS/bin/uv" --version >/dev/null 2>&1; then
  step "installing uv into $TOOLS"
  rm -rf "$TOOLS"
  "$BASE_PYTHON" -m venv "$TOOLS"
  "$TOOLS/bin/python" -m pip install --quiet --disable-pip-version-check "uv<1" \
    >"$WORK/pip.log" 2>&1 || { tail -30 "$WORK/pip.log" >&2; die "pip install uv failed"; }
fi
exec 9>&-
echo "  ok    tools: vercel $("$VERCEL" --version 2>/dev/null | tail -1), $("$TOOLS/bin/uv" --version)"

# --- vercel build -------------------------------------------------------------------------------
step "vercel build"
mkdir -p .vercel
if [ -f .vercel/project.json ] && [ "$(cat .vercel/project.json)" != "$LOCAL_PROJECT" ]; then
  cp .vercel/project.json "$WORK/project.json.saved"
fi
# With `settings` in project.json the CLI never asks the API for the project's settings.
printf '%s\n' "$LOCAL_PROJECT" >.vercel/project.json
build_started=$SECONDS
# vercel.json's build.env (VERCEL_PYTHON_COMPILEALL=1: bytecode in the bundle): `vercel deploy`
# hands it to the remote build, a local `vercel build` does not read it, so it is passed here.
build_env=$("$PYTHON" scripts/deploy_check.py build-env) || die "vercel.json build.env is not usable"
BUILD_ENV=()
[ -z "$build_env" ] || mapfile -t BUILD_ENV <<<"$build_env"
# PATH: Python 3.12 first (the builder looks for it), then uv (its tools venv's python comes
# second, so the builder never picks up a venv interpreter). CI=true and no stdin: no prompts.
if ! env "${BUILD_ENV[@]}" PATH="$(dirname "$BASE_PYTHON"):$TOOLS/bin:$PATH" CI=true \
  VERCEL_TELEMETRY_DISABLED=1 UV_PYTHON_DOWNLOADS=never "$VERCEL" build --yes </dev/null \
  >"$WORK/build.log" 2>&1; then
  tail -40 "$WORK/build.log" >&2
  die "vercel build failed (output above)"
fi
echo "  ok    vercel build ($((SECONDS - build_started)) s) -> .vercel/output"

step "build output"
helper build .vercel/output

# --- the functions under vercel-runtime, no settings --------------------------------------------
for function in api/index api/stripe_webhook; do
  step "serving $function under vercel-runtime"
  mkdir "$WORK/${function//\//_}"
  helper serve .vercel/output "$function" "$WORK/${function//\//_}"
done

echo "deploy check passed in $((SECONDS - started)) s"
