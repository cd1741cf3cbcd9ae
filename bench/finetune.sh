#!/usr/bin/env bash
# Fine-tune step time at batch 8, native (`googlenet finetune`, burn-flex CPU) against PyTorch
# CPU on the same task, same thread count, heads only and all layers, in one run.
# Needs ../shared and `pip install torch numpy`.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${GOOGLENET_SHARED:-../shared}
THREADS=${THREADS:-2}
STEPS=${STEPS:-12}
cargo build --release --quiet
tmp=$(mktemp -d)
python3 - "$tmp" <<'PY'
# Two classes of 24-bit BMPs (reddish discs, bluish stripes), 6 each.
import os, struct, sys, random
root = sys.argv[1]
def bmp(path, w, h, px):
    row = (w * 3 + 3) & ~3
    data = b''.join(bytes(c for x in range(w) for c in px(x, h - 1 - y)[::-1]) + b'\0' * (row - w * 3) for y in range(h))
    open(path, 'wb').write(b'BM' + struct.pack('<IHHI', 54 + len(data), 0, 0, 54) + struct.pack('<IiiHHIIiiII', 40, w, h, 1, 24, 0, len(data), 2835, 2835, 0, 0) + data)
for c, name in enumerate(['red', 'blue']):
    os.makedirs(f'{root}/data/{name}')
    for k in range(6):
        r = random.Random(c * 100 + k)
        if c == 0:
            px = lambda x, y: (200, 40, 30) if (x - 80) ** 2 + (y - 80) ** 2 < 1600 + k * 100 else (230, 210, 190)
        else:
            px = lambda x, y: (30, 60, 200) if (x // 10 + k) % 2 else (220, 230, 240)
        bmp(f'{root}/data/{name}/{k}.bmp', 160, 160, px)
PY
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; threads $THREADS"
for mode in heads all; do
  steps=$STEPS; [ "$mode" = all ] && steps=$((STEPS / 2))
  RAYON_NUM_THREADS=$THREADS "${CARGO_TARGET_DIR:-target}"/release/googlenet finetune --weights "$SHARED/weights/bvlc_googlenet.safetensors" \
    --data "$tmp/data" --steps "$steps" --batch 8 --train "$mode" --out "$tmp/ft.safetensors" --log "$tmp/$mode.jsonl" 2> "$tmp/$mode.err" \
    || { cat "$tmp/$mode.err"; exit 1; }
  times=$(grep -o '[0-9]* ms$' "$tmp/$mode.err" | cut -d' ' -f1)
  first=$(echo "$times" | head -1)
  median=$(echo "$times" | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}')
  echo "burn native $mode: first step $first ms, median $median ms over $(echo "$times" | wc -l) steps"
done
python3 bench/torch_finetune.py "$THREADS" "$STEPS"
rm -rf "$tmp"
