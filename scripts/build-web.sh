#!/usr/bin/env bash
# Build the browser app: one wasm per engine (release profile `wasm`), each through
# wasm-bindgen → pkg/<engine>/, wasm-opt and gzip, plus the sample gallery. The page loads
# only the engine it runs:
#   cpu      burn-flex, SIMD128, one thread: runs on any page (stable Rust)
#   threads  burn-flex on rayon over Web Workers sharing one memory: +atomics, std rebuilt
#            (-Z build-std, through RUSTC_BOOTSTRAP on the pinned stable toolchain, which
#            needs its rust-src); runs where the page is cross-origin isolated
#   threads-relaxed  the same with relaxed-SIMD FMA in the GEMM (vendor/gemm-f32), for
#            browsers that have relaxed SIMD (Chrome, Edge); shares the threads build's
#            target folder, so only the crates above gemm-f32 are compiled again
#   webgpu   burn's wgpu backend only
# Installs the wasm target, rust-src, wasm-bindgen-cli and npm packages when missing.
# GOOGLENET_ENGINES="cpu webgpu" builds a subset (development only; the page and the tests
# expect all four).
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${GOOGLENET_SHARED:-../shared}
WBG_VERSION=0.2.130
ENGINES=${GOOGLENET_ENGINES-cpu threads threads-relaxed webgpu}
TARGET=wasm32-unknown-unknown

die() { echo "build-web.sh: $*" >&2; exit 1; }

# Each engine once (a name given twice would race its own background wasm-opt), and an
# unknown name refused before anything is built.
declare -a ENGINE_LIST=() NAMES=()
read -ra NAMES <<< "$ENGINES"
for engine in "${NAMES[@]}"; do
  case $engine in cpu|threads|threads-relaxed|webgpu) ;; *) die "unknown engine '$engine' (cpu, threads, threads-relaxed, webgpu)" ;; esac
  [[ " ${ENGINE_LIST[*]-} " == *" $engine "* ]] || ENGINE_LIST+=("$engine")
done
[ ${#ENGINE_LIST[@]} -gt 0 ] || die "no engine to build (GOOGLENET_ENGINES is empty)"
ENGINES="${ENGINE_LIST[*]}"

TOOLCHAIN=$(rustup show active-toolchain | cut -d' ' -f1)
rustup target list --installed | grep -q "$TARGET" || rustup target add "$TARGET" \
  || die "could not add the $TARGET target to $TOOLCHAIN (rustup target add $TARGET)"
if [[ " $ENGINES " == *" threads"* ]]; then
  rustup component list --installed | grep -q '^rust-src' || rustup component add rust-src \
    || die "the threaded CPU engine rebuilds std and needs rust-src for $TOOLCHAIN (rustup component add rust-src)"
fi
if ! wasm-bindgen --version 2>/dev/null | grep -q "$WBG_VERSION"; then
  cargo install wasm-bindgen-cli --version "$WBG_VERSION" \
    || die "could not install wasm-bindgen-cli $WBG_VERSION (cargo install wasm-bindgen-cli --version $WBG_VERSION)"
fi
[ -x node_modules/.bin/wasm-opt ] || npm ci --no-audit --no-fund
[ -x node_modules/.bin/wasm-opt ] || die "wasm-opt is missing after npm ci (package binaryen)"

OPT_FEATURES=(--enable-simd --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext
  --enable-mutable-globals --enable-multivalue --enable-reference-types)

# wasm-opt (binaryen's npm build runs on one core) then the engine's place under pkg/: in the
# background, while the next engine compiles; `finish_all` waits for every one.
declare -a OPT_JOBS=()
optimise() {
  local out=$1; shift
  node_modules/.bin/wasm-opt --strip-debug --strip-producers --strip-target-features "$@" \
    "$out.bindgen/googlenet_bg.wasm" -o "$out.bindgen/googlenet_bg.opt.wasm" &&
    mv "$out.bindgen/googlenet_bg.opt.wasm" "$out.bindgen/googlenet_bg.wasm" &&
    rm -rf "$out" && mv "$out.bindgen" "$out"
}
finish_all() {
  local job pid engine failed=""
  for job in "${OPT_JOBS[@]}"; do
    pid=${job%%:*} engine=${job#*:}
    if ! wait "$pid"; then cat "pkg/$engine.opt.log" >&2; failed+=" $engine"; fi
    rm -f "pkg/$engine.opt.log"
  done
  [ -z "$failed" ] || die "wasm-opt failed for:$failed (its output is above)"
}
# On an early exit (a failed compile, Ctrl-C): stop the jobs' wasm-opt too, and leave no
# half-built engine folder for build-id.mjs to list.
stop_jobs() {
  local pid
  for pid in $(jobs -p); do pkill -P "$pid" 2>/dev/null || true; kill "$pid" 2>/dev/null || true; done
  rm -rf pkg/*.bindgen pkg/*.opt.log
}
trap stop_jobs EXIT

build() {
  local engine=$1 out=pkg/$1
  local -a cargo_args=(build --lib --target "$TARGET" --profile wasm --features "engine-$engine")
  local target_dir=${CARGO_TARGET_DIR:-target} opt=(-O3 "${OPT_FEATURES[@]}")
  if [[ $engine == threads* ]]; then
    # Shared memory (4 GiB at most, as the one-thread build), std with atomics. Their own
    # target folder: other RUSTFLAGS would rebuild the other engines' dependencies.
    target_dir=${CARGO_TARGET_DIR:-target}/wasm-threads
    cargo_args+=(-Z build-std=panic_abort,std)
    opt+=(--enable-threads)
    export RUSTC_BOOTSTRAP=1
    export RUSTFLAGS="-C target-feature=+simd128,+atomics,+bulk-memory,+mutable-globals -C link-arg=--max-memory=4294967296"
  fi
  # Relaxed SIMD in the GEMM's microkernels only (vendor/gemm-f32's feature): their
  # multiply-add fused. The page runs this build where the browser validates relaxed SIMD.
  if [ "$engine" = threads-relaxed ]; then opt+=(--enable-relaxed-simd); fi
  if [ "$engine" = webgpu ]; then
    # The math runs on the GPU: the wasm is optimised for size (the download budget).
    export CARGO_PROFILE_WASM_OPT_LEVEL=z
    opt=(-Oz "${OPT_FEATURES[@]}")
  fi
  echo "== engine $engine"
  cargo "${cargo_args[@]}" --target-dir "$target_dir"
  unset RUSTC_BOOTSTRAP RUSTFLAGS CARGO_PROFILE_WASM_OPT_LEVEL
  rm -rf "$out.bindgen"
  wasm-bindgen --target web --no-typescript --out-dir "$out.bindgen" "$target_dir/$TARGET/wasm/googlenet.wasm"
  optimise "$out" "${opt[@]}" > "$out.opt.log" 2>&1 &
  OPT_JOBS+=("$!:$engine")
}

for engine in $ENGINES; do build "$engine"; done
finish_all

find pkg -name '*.wasm' -o -name '*.js' | while read -r f; do gzip -9 -kf "$f"; done
for f in index.html www/*.js www/*/*.js www/*.css; do gzip -9 -kf "$f"; done

# The page's default weights: the BVLC file as float16 (half the download), when the shared
# data is here (scripts/serve.mjs serves the float32 file when it is not). Written by
# scripts/f16.mjs (the same rounding as `googlenet convert --dtype f16`): no native build.
if [ -f "$SHARED/weights/bvlc_googlenet.safetensors" ] && { ! [ -f weights/bvlc_googlenet.f16.safetensors ] || [ "$SHARED/weights/bvlc_googlenet.safetensors" -nt weights/bvlc_googlenet.f16.safetensors ]; }; then
  mkdir -p weights
  node scripts/f16.mjs "$SHARED/weights/bvlc_googlenet.safetensors" weights/bvlc_googlenet.f16.safetensors \
    || die "converting the weights to float16 failed"
fi

# The gallery: the shared test photos, when present.
mkdir -p www/samples
if [ -d "$SHARED/images" ]; then cp "$SHARED"/images/*.jpg www/samples/; fi
node -e 'const fs=require("fs");console.log(JSON.stringify(fs.readdirSync("www/samples").filter(f=>/\.(jpe?g|png)$/i.test(f)).sort()))' > www/samples/index.json

# The build id the service worker versions its cache by (every served file's SHA-256).
node scripts/build-id.mjs

for engine in $ENGINES; do
  echo "wasm $engine: $(stat -c %s "pkg/$engine/googlenet_bg.wasm") bytes raw, $(stat -c %s "pkg/$engine/googlenet_bg.wasm.gz") bytes gzip"
done
