import { test } from 'node:test';
import assert from 'node:assert/strict';
import { toHalfBits, safetensorsToF16 } from './f16.mjs';

test('float32 to float16 rounds to nearest even and refuses what float16 cannot hold', () => {
  const cases = [[1, 0x3c00], [-2, 0xc000], [0, 0], [-0, 0x8000], [0.1, 0x2e66], [1 / 3, 0x3555], [65504, 0x7bff],
    [2 ** -24, 0x0001], [2 ** -14, 0x0400], [2 ** -25, 0], [1.5 * 2 ** -25, 0x0001], [1 + 2 ** -11, 0x3c00], [1 + 3 * 2 ** -11, 0x3c02],
    [6.1e-5, 0x03ff]];
  for (const [v, bits] of cases) assert.equal(toHalfBits(v), bits, `${v} → 0x${bits.toString(16)}`);
  for (const v of [65520, 1e6, Infinity, -Infinity, NaN]) assert.equal(toHalfBits(v), null, `${v} is refused`);
});

test('a safetensors file keeps its names, shapes, metadata and other dtypes; F32 values become F16', () => {
  const header = { __metadata__: { format: 'pt' }, 'b.bias': { dtype: 'F32', shape: [2], data_offsets: [8, 16] }, 'a.weight': { dtype: 'I64', shape: [1], data_offsets: [0, 8] } };
  let json = JSON.stringify(header); while (json.length % 8) json += ' ';
  const h = new TextEncoder().encode(json);
  const file = new Uint8Array(8 + h.length + 16);
  const dv = new DataView(file.buffer);
  dv.setBigUint64(0, BigInt(h.length), true);
  file.set(h, 8);
  dv.setBigInt64(8 + h.length, 42n, true);
  dv.setFloat32(8 + h.length + 8, 1.5, true);
  dv.setFloat32(8 + h.length + 12, -0.25, true);
  const out = safetensorsToF16(file);
  const odv = new DataView(out.buffer);
  const n = Number(odv.getBigUint64(0, true));
  assert.equal(n % 8, 0);
  const oh = JSON.parse(new TextDecoder().decode(out.subarray(8, 8 + n)));
  assert.deepEqual(oh.__metadata__, { format: 'pt' });
  assert.deepEqual(oh['a.weight'], { dtype: 'I64', shape: [1], data_offsets: [0, 8] });
  assert.deepEqual(oh['b.bias'], { dtype: 'F16', shape: [2], data_offsets: [8, 12] });
  assert.equal(odv.getBigInt64(8 + n, true), 42n);
  assert.equal(odv.getUint16(8 + n + 8, true), 0x3e00);
  assert.equal(odv.getUint16(8 + n + 10, true), 0xb400);
  assert.equal(out.length, 8 + n + 12);
  dv.setFloat32(8 + h.length + 12, 1e6, true);
  assert.throws(() => safetensorsToF16(file), /`b\.bias` value 1 is 1000000: beyond float16's range/);
  assert.throws(() => safetensorsToF16(file.subarray(0, 4)), /too short/);
});
