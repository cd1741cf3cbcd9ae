#!/usr/bin/env bash
# Build the browser app and serve it on http://127.0.0.1:${PORT:-8080}/ (works without a GPU:
# the page falls back to the CPU path).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build-web.sh
exec node scripts/serve.mjs "${PORT:-8080}"
