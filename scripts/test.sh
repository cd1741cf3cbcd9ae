#!/usr/bin/env bash
# Every test: formatting and clippy, Rust unit + integration tests (against ../shared), the CLI's `--backend wgpu`
# on Mesa's lavapipe (Vulkan on the CPU), the browser build, the front end's unit tests, and the
# browser end-to-end tests in headless Chromium (CPU path and WebGPU through SwiftShader).
# Installs what a fresh machine lacks.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian's Chromium for the browser tests, Mesa's Vulkan drivers (lavapipe) for the native GPU
# backend's test.
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
compgen -G '/usr/share/vulkan/icd.d/lvp_icd.*.json' > /dev/null || missing+=(mesa-vulkan-drivers)
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
npm ci --no-audit --no-fund

# Lints: formatting and clippy with warnings as errors, natively and for the browser's CPU engine.
rustup component list --installed | grep -q '^rustfmt' || rustup component add rustfmt
rustup component list --installed | grep -q '^clippy' || rustup component add clippy
rustup target list --installed | grep -q wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
cargo fmt --check
cargo clippy --all-targets -- -D warnings
cargo clippy --lib --target wasm32-unknown-unknown --features engine-cpu -- -D warnings

cargo test --release
# The CLI on burn's wgpu backend (the WebGPU engine's kernels, natively): the reference answers
# on lavapipe. Its own build (profile gpu-check, unoptimised: the math runs in the driver),
# about 6 minutes on two cores. Mesa wants a runtime directory.
runtime_dir=$(mktemp -d)
XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$runtime_dir} cargo test --profile gpu-check --features wgpu --test bvlc_reference -- wgpu
rm -rf "$runtime_dir"
bash scripts/build-web.sh
node --test www/lib/ www/app/ scripts/lib/
node --test --test-concurrency=1 tests/e2e/
