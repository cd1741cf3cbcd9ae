import { test } from 'node:test';
import assert from 'node:assert/strict';
import { thousands, shape, shares, toGrey, inferno, num } from './format.js';

test('numbers and shapes read like the paper', () => {
  assert.equal(thousands(6998552), '6,998,552');
  assert.equal(shape([256, 28, 28]), '28×28×256');
});

test('shares sum to one and survive all-zero input', () => {
  assert.deepEqual(shares([1, 1, 2]), [0.25, 0.25, 0.5]);
  assert.deepEqual(shares([0, 0]), [0.5, 0.5]);
});

test('feature maps are stretched to the full grey range', () => {
  assert.deepEqual([...toGrey(new Float32Array([2, 4, 6]))], [0, 128, 255]);
  assert.deepEqual([...toGrey(new Float32Array([3, 3]))], [0, 0]);
  assert.deepEqual(inferno(0), [0, 0, 4]);
  assert.deepEqual(inferno(1), [252, 255, 164]);
});

test('settings read as typed, not as f32 round-trips', () => {
  assert.equal(num(0.30000001192092896), '0.3');
  assert.equal(num(0.001), '0.001');
  assert.equal(num(8), '8');
});
