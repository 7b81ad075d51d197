# Shared by scripts/dev.sh and scripts/test.sh: a Python 3.12+ virtualenv with the dependencies.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

find_python() {
  local candidates=("${PYTHON:-}" python3.12 python3.13 python3)
  if command -v pyenv >/dev/null 2>&1; then
    candidates+=("$(pyenv root)"/versions/3.12*/bin/python "$(pyenv root)"/versions/3.13*/bin/python)
  fi
  for candidate in "${candidates[@]}"; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
      command -v "$candidate"
      return 0
    fi
  done
  echo "error: Python 3.12 or newer is required (set PYTHON=/path/to/python3.12)" >&2
  return 1
}

ensure_venv() {
  local requirements=$1
  if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import sys; sys.exit(sys.version_info < (3, 12))'; then
    rm -rf .venv
    "$(find_python)" -m venv .venv
  fi
  local stamp=".venv/.installed-$(cat requirements.txt "$requirements" | sha1sum | cut -c1-12)"
  if [ ! -f "$stamp" ]; then
    echo "==> installing dependencies from $requirements" >&2
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -r "$requirements"
    touch "$stamp"
  fi
}
