#!/usr/bin/env bash
# Run the whole test suite against real PostgreSQL (127.0.0.1:5432) and real Redis
# (127.0.0.1:6379), starting them if they are down and failing loudly if they can't be reached.
# Arguments are passed to pytest (e.g. scripts/test.sh -k gate -x).
source "$(dirname "$0")/_env.sh"
ensure_venv requirements-dev.txt

# Headless Chromium for the portal's browser tests (tests/portal/browser): Debian's package, since
# `playwright install` cannot download its own browser here. Installed once (root in CI; else
# through `sudo -n`), with `apt-get update` only when the install fails on a stale package list.
if [ ! -x /usr/bin/chromium ]; then
  echo "==> installing Chromium (Debian package) for the browser tests" >&2
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo -n"
  install_chromium() {
    $sudo env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq --no-install-recommends chromium </dev/null >/dev/null
  }
  install_chromium || { $sudo apt-get update -qq </dev/null >/dev/null && install_chromium; } || {
    echo "error: could not install chromium; as root: apt-get install -y chromium" >&2
    exit 1
  }
fi

wait_for() {  # name, check command...
  local name=$1; shift
  for _ in $(seq 1 30); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  echo "error: $name is not reachable; start it and re-run" >&2
  exit 1
}

pg_up() { .venv/bin/python -c 'import socket; socket.create_connection(("127.0.0.1", 5432), 1).close()'; }
redis_up() { .venv/bin/python -c '
import socket; s = socket.create_connection(("127.0.0.1", 6379), 1); s.sendall(b"PING\r\n")
assert s.recv(7).startswith(b"+PONG")'; }

if ! pg_up; then
  echo "==> starting PostgreSQL" >&2
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start || true
  fi
  wait_for PostgreSQL pg_up
fi
if ! redis_up; then
  echo "==> starting Redis" >&2
  if command -v redis-server >/dev/null 2>&1; then
    mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
  fi
  wait_for Redis redis_up
fi

echo "==> ruff" >&2
.venv/bin/ruff check .
.venv/bin/ruff format --check . >/dev/null || { echo "error: run .venv/bin/ruff format ." >&2; exit 1; }

echo "==> mypy" >&2
.venv/bin/mypy app

echo "==> pytest" >&2
set +e
.venv/bin/python -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "error: pytest collected no tests; the suite is missing or broken" >&2
  exit 1
fi
exit "$status"
