#!/usr/bin/env bash
# Every test: Rust unit + integration tests (against ../shared), the browser build, the
# front end's unit tests, and the browser end-to-end tests in headless Chromium (CPU path and
# WebGPU through SwiftShader). Installs what a fresh machine lacks.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! [ -x /usr/bin/chromium ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium
fi
npm ci --no-audit --no-fund

cargo test --release
bash scripts/build-web.sh
node --test www/lib/
node --test --test-concurrency=1 tests/e2e/
