// Loss chart geometry: pure, tested with `node --test`.

/** Min/max of several series (ignoring non-finite values), padded so lines do not touch the frame. */
export function extent(series) {
  let lo = Infinity, hi = -Infinity;
  for (const s of series) for (const v of s) if (Number.isFinite(v)) { if (v < lo) lo = v; if (v > hi) hi = v; }
  if (!Number.isFinite(lo)) return [0, 1];
  if (hi === lo) return [lo - 0.5, hi + 0.5];
  return [Math.min(0, lo), hi * 1.05];
}

/** Map step i (0-based of n) and value v into a box {x, y, w, h}. */
export function project(i, n, v, [lo, hi], box) {
  const x = box.x + (n <= 1 ? 0 : (i / (n - 1)) * box.w);
  const y = box.y + box.h - ((v - lo) / (hi - lo)) * box.h;
  return [x, y];
}
