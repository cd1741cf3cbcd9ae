#!/usr/bin/env bash
# Build the browser app: wasm (release profile `wasm`), wasm-bindgen → pkg/, wasm-opt,
# gzip, and the sample gallery. Installs the wasm target, wasm-bindgen-cli and npm packages
# when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${GOOGLENET_SHARED:-../shared}
WBG_VERSION=0.2.130

rustup target list --installed | grep -q wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
if ! wasm-bindgen --version 2>/dev/null | grep -q "$WBG_VERSION"; then
  cargo install wasm-bindgen-cli --version "$WBG_VERSION"
fi
[ -x node_modules/.bin/wasm-opt ] || npm ci --no-audit --no-fund

cargo build --lib --target wasm32-unknown-unknown --profile wasm
rm -rf pkg
wasm-bindgen --target web --no-typescript --out-dir pkg target/wasm32-unknown-unknown/wasm/googlenet.wasm
node_modules/.bin/wasm-opt -O3 --strip-debug --strip-producers \
  --enable-simd --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
  --enable-mutable-globals --enable-multivalue --enable-reference-types \
  pkg/googlenet_bg.wasm -o pkg/googlenet_bg.opt.wasm
mv pkg/googlenet_bg.opt.wasm pkg/googlenet_bg.wasm
for f in pkg/*.wasm pkg/*.js index.html www/*.js www/*/*.js www/*.css; do gzip -9 -kf "$f"; done

# The gallery: the shared test photos, when present.
mkdir -p www/samples
if [ -d "$SHARED/images" ]; then cp "$SHARED"/images/*.jpg www/samples/; fi
node -e 'const fs=require("fs");console.log(JSON.stringify(fs.readdirSync("www/samples").filter(f=>/\.(jpe?g|png)$/i.test(f)).sort()))' > www/samples/index.json

echo "wasm: $(stat -c %s pkg/googlenet_bg.wasm) bytes raw, $(stat -c %s pkg/googlenet_bg.wasm.gz) bytes gzip"
