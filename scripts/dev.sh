#!/usr/bin/env bash
# Run the API locally. With no settings it uses the embedded default: a SQLite file and an
# in-process Redis, loaded with a sample catalog. Set DATABASE_URL / REDIS_URL (or a .env) to use
# real PostgreSQL and Redis instead.
source "$(dirname "$0")/_env.sh"
ensure_venv requirements.txt
# The embedded SQLite file migrates itself at start-up; a PostgreSQL DATABASE_URL needs this step.
echo "==> migrating the database" >&2
.venv/bin/alembic upgrade head
# Links the app writes (portal sign-in links, billing returns) point at this server unless the
# environment or .env says otherwise. With no SMTP_URL, sign-in links are printed below.
if [ -z "${PUBLIC_BASE_URL:-}" ] && ! grep -qs '^PUBLIC_BASE_URL=.' .env; then
  export PUBLIC_BASE_URL="http://${HOST:-127.0.0.1}:${PORT:-8000}"
fi
echo "==> portal: ${PUBLIC_BASE_URL:-see .env}/ (sign-in links appear in this terminal)" >&2
echo "==> serving on http://127.0.0.1:${PORT:-8000} (Ctrl-C to stop)" >&2
exec .venv/bin/uvicorn api.index:app --host "${HOST:-127.0.0.1}" --port "${PORT:-8000}"
