// Small pure helpers shared by the UI modules (tested with `node --test`).

export function thousands(n) {
  return Math.round(n).toLocaleString('en-US');
}

export function shape(chw) {
  const [c, h, w] = chw;
  return `${h}×${w}×${c}`;
}

/** A setting as a person would type it: 0.3, not the f32 0.30000001192092896. */
export function num(x) {
  return String(Number(Number(x).toPrecision(6)));
}

export function percent(p, digits = 1) {
  return `${(p * 100).toFixed(digits)}%`;
}

/** Shares of a list of non-negative numbers (all zero → equal shares). */
export function shares(values) {
  const total = values.reduce((a, b) => a + b, 0);
  return total > 0 ? values.map((v) => v / total) : values.map(() => 1 / values.length);
}

/**
 * Normalise a feature map to 0..255 grey levels (per map: min → 0, max → 255).
 * @param {Float32Array} data  h*w values
 */
export function toGrey(data) {
  let lo = Infinity, hi = -Infinity;
  for (const v of data) { if (v < lo) lo = v; if (v > hi) hi = v; }
  const span = hi - lo || 1;
  const out = new Uint8ClampedArray(data.length);
  for (let i = 0; i < data.length; i++) out[i] = Math.round(((data[i] - lo) / span) * 255);
  return out;
}

/** A perceptual-ish colour ramp (black → purple → orange → yellow) for heatmaps. */
export function inferno(t) {
  const stops = [[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]];
  const x = Math.min(1, Math.max(0, t)) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(x));
  const f = x - i;
  return stops[i].map((a, k) => Math.round(a + (stops[i + 1][k] - a) * f));
}
