// Float32 → float16 for safetensors files, as `googlenet convert --dtype f16` stores them
// (round to nearest, ties to even; a value beyond float16's range is refused, never stored as
// an infinity). The build uses it for the page's default weights, so serving the demo needs no
// native release build. Tested with `node --test scripts/lib/`.

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The float16 bits of `v` (rounded to nearest even), or null when it is not finite as float16. */
export function toHalfBits(v) {
  f32[0] = v;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return null; // an infinity or NaN in the input
  const e = exp - 127 + 15;
  if (e >= 0x1f) return null;
  if (e <= 0) {
    // A float16 subnormal (or zero): the significand with its leading 1, shifted into place.
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && (half & 1))) half += 1;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (half & 1))) half += 1; // (a carry moves into the exponent)
  if ((half & 0x7fff) >= 0x7c00) return null; // rounded past the largest float16
  return sign | half;
}

/**
 * A safetensors file with every F32 tensor stored as F16 (names, shapes, other dtypes and the
 * metadata kept).
 * @param {Uint8Array} bytes
 * @returns {Uint8Array}
 */
export function safetensorsToF16(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 8) throw new Error(`${bytes.length} bytes: too short for a safetensors file (an 8-byte header length first)`);
  const n = Number(view.getBigUint64(0, true));
  if (n < 2 || 8 + n > bytes.length) throw new Error(`the header claims ${n} bytes but the file has ${bytes.length}`);
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  const data = bytes.subarray(8 + n);
  const names = Object.keys(header).filter((k) => k !== '__metadata__')
    .sort((a, b) => header[a].data_offsets[0] - header[b].data_offsets[0]);
  const out = { ...(header.__metadata__ ? { __metadata__: header.__metadata__ } : {}) };
  const parts = [];
  let offset = 0;
  for (const name of names) {
    const t = header[name];
    const [start, end] = t.data_offsets;
    const raw = data.subarray(start, end);
    let part = raw;
    let dtype = t.dtype;
    if (t.dtype === 'F32') {
      dtype = 'F16';
      const src = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
      part = new Uint8Array(raw.length / 2);
      const dst = new DataView(part.buffer);
      for (let i = 0; i < raw.length / 4; i++) {
        const v = src.getFloat32(i * 4, true);
        const h = toHalfBits(v);
        if (h === null) throw new Error(`tensor \`${name}\` value ${i} is ${v}: beyond float16's range (keep this file as float32)`);
        dst.setUint16(i * 2, h, true);
      }
    }
    out[name] = { dtype, shape: t.shape, data_offsets: [offset, offset + part.length] };
    offset += part.length;
    parts.push(part);
  }
  let json = JSON.stringify(out);
  while ((json.length) % 8 !== 0) json += ' ';
  const head = new TextEncoder().encode(json);
  const result = new Uint8Array(8 + head.length + offset);
  new DataView(result.buffer).setBigUint64(0, BigInt(head.length), true);
  result.set(head, 8);
  let at = 8 + head.length;
  for (const p of parts) { result.set(p, at); at += p.length; }
  return result;
}
