#!/usr/bin/env bash
# Installs what the tests need and runs the whole suite: lint, format check, types, tests.
set -euo pipefail
source "$(dirname "$0")/bootstrap.sh"

if command -v npm >/dev/null 2>&1; then
  echo "== npm (supabase-js for the auth tests)"
  npm ci --prefix tests/js --no-audit --no-fund --loglevel=error
fi
# The browser tests (tests/e2e) drive Debian's Chromium and the built web app.
if [ ! -x /usr/lib/chromium/chromium ] && [ ! -x /usr/bin/chromium ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "== chromium (for the browser tests)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends chromium >/dev/null; } \
      || echo "warning: could not install chromium; the browser tests will be skipped (fail in CI)" >&2
  else
    echo "warning: chromium is missing (install it to run the browser tests)" >&2
  fi
fi
if command -v npm >/dev/null 2>&1; then
  # npm ci in frontend/ and next build, each only when its inputs changed (src/torale/web.py)
  echo "== web app (npm ci + next build, cached)"
  uv run torale web --build-only
fi
echo "== ruff"; uv run ruff check src tests bench
echo "== ruff format"; uv run ruff format --check src tests bench
echo "== mypy"; uv run mypy
echo "== pytest"
set +e
uv run pytest "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: the suite is broken (exit 5)" >&2
  exit 1
fi
exit "$rc"
