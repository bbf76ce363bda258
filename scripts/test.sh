#!/usr/bin/env bash
# Installs what the tests need and runs the whole suite: lint, format check, types, tests.
set -euo pipefail
source "$(dirname "$0")/bootstrap.sh"

if command -v npm >/dev/null 2>&1; then
  echo "== npm (supabase-js for the auth tests)"
  npm ci --prefix tests/js --no-audit --no-fund --loglevel=error
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
