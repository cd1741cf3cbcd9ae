#!/usr/bin/env bash
# Side by side, in one run: `googlenet bench` (burn-flex CPU) vs ONNX Runtime CPU on the same
# BVLC weights, batch 1, same thread counts. Needs ../shared and `pip install onnxruntime numpy`.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${GOOGLENET_SHARED:-../shared}
ITERS=${ITERS:-30}
cargo build --release --quiet
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB"
for t in ${THREADS:-1 2}; do
  ours=$("${CARGO_TARGET_DIR:-target}"/release/googlenet bench --variant bvlc --threads "$t" --iters "$ITERS" --json)
  ort=$(python3 bench/ort_cpu.py "$SHARED/bench/bvlc_googlenet.onnx" "$t" "$ITERS" 3)
  python3 - "$ours" "$ort" <<'PY'
import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"threads {a['threads']}: burn {a['median_ms']:.1f} ms (min {a['min_ms']:.1f}) | ORT {b['median_ms']:.1f} ms (min {b['min_ms']:.1f}) | ratio burn/ORT {a['median_ms']/b['median_ms']:.2f}x  [{a['backend']} vs {b['backend']}]")
PY
done
