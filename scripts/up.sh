#!/usr/bin/env bash
# Starts the whole system on the embedded defaults (Postgres + pgvector, Redis, every service).
set -euo pipefail
source "$(dirname "$0")/bootstrap.sh"
exec uv run torale up "$@"
