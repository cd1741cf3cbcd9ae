import { test } from 'node:test';
import assert from 'node:assert/strict';
import { extent, project } from './chart.js';

test('extent starts at zero for positive losses and pads the top', () => {
  assert.deepEqual(extent([[2, 1], [0.5, NaN]]), [0, 2.1]);
  assert.deepEqual(extent([[]]), [0, 1]);
  assert.deepEqual(extent([[3, 3]]), [2.5, 3.5]);
});

test('project maps the first and last step to the box edges', () => {
  const box = { x: 10, y: 0, w: 100, h: 50 };
  assert.deepEqual(project(0, 5, 0, [0, 1], box), [10, 50]);
  assert.deepEqual(project(4, 5, 1, [0, 1], box), [110, 0]);
});
