import test from 'node:test';
import assert from 'node:assert/strict';
import { findClasses, parseClass, describeEvidence, shortName } from './explain.js';

const labels = ['tabby, tabby cat', 'tiger cat', 'Egyptian cat', 'Pembroke, Pembroke Welsh corgi', 'Cardigan, Cardigan Welsh corgi', 'cat <b>"quoted"</b>'];

test('findClasses ranks exact, then prefix, then substring matches, on every synonym', () => {
  assert.deepEqual(findClasses(labels, 'tiger cat').map((c) => c.index), [1]);
  assert.deepEqual(findClasses(labels, 'cat').map((c) => c.index), [5, 0, 1, 2]);
  assert.deepEqual(findClasses(labels, 'CORGI').map((c) => c.index), [3, 4]);
  assert.deepEqual(findClasses(labels, 'pembroke welsh').map((c) => c.index), [3]);
  assert.deepEqual(findClasses(labels, '   '), []);
  assert.deepEqual(findClasses(labels, 'zebra'), []);
  assert.equal(findClasses(labels, 'c', 2).length, 2);
});

test('parseClass reads indices, option texts and unambiguous names', () => {
  assert.equal(parseClass(labels, '#2'), 2);
  assert.equal(parseClass(labels, '3'), 3);
  assert.equal(parseClass(labels, 'Egyptian cat (#2)'), 2);
  assert.equal(parseClass(labels, '99'), null);
  assert.equal(parseClass(labels, 'egyptian'), 2);
  assert.equal(parseClass(labels, 'tabby'), 0);
  assert.equal(parseClass(labels, 'corgi'), null, 'two corgis: ambiguous');
  assert.equal(parseClass(labels, 'cat <b>"quoted"</b>'), 5);
  assert.equal(shortName(labels[3]), 'Pembroke');
});

test('describeEvidence names the strongest third of the image and the lit share', () => {
  const grid = Array.from({ length: 6 }, () => Array(6).fill(0));
  grid[0][1] = 2; grid[1][1] = 1.5; grid[5][5] = 0.5;
  const d = describeEvidence(grid);
  assert.equal(d.max, 2);
  assert.equal(d.where, 'top left');
  assert.equal(Math.round(d.share * 36), 2);
  assert.match(d.text, /^strongest at the top left; 6% of the image/);
  grid[0][1] = 0; grid[1][1] = 0; grid[3][2] = 9;
  assert.equal(describeEvidence(grid).where, 'centre');
  grid[3][2] = 0; grid[3][5] = 9;
  assert.equal(describeEvidence(grid).where, 'right middle');
  assert.equal(describeEvidence([[0, 0], [0, 0]]).text, 'no positive evidence in this block');
});
