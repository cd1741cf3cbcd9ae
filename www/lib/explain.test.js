import test from 'node:test';
import assert from 'node:assert/strict';
import { findClasses, parseClass, lookupClass, describeEvidence, shortName } from './explain.js';

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

test('lookupClass: an exact first name first, then any case, then synonyms; several matches are a choice', () => {
  // The ImageNet classes that share a name (synset_words.txt lines 135, 265, 475, 518, 639, 640, 658, 745).
  const imagenet = [];
  Object.assign(imagenet, { 134: 'crane', 264: 'Cardigan, Cardigan Welsh corgi', 474: 'cardigan', 517: 'crane', 638: 'maillot', 639: 'maillot, tank suit', 657: 'missile', 744: 'projectile, missile' });
  for (let i = 0; i < 1000; i++) imagenet[i] ??= `class${i}`;
  assert.deepEqual(lookupClass(imagenet, 'cardigan'), { index: 474 }, 'the sweater, exactly');
  assert.deepEqual(lookupClass(imagenet, 'Cardigan'), { index: 264 }, 'the corgi, exactly');
  assert.deepEqual(lookupClass(imagenet, 'CARDIGAN').choices.map((c) => c.index), [264, 474], 'in another case both: a choice');
  assert.deepEqual(lookupClass(imagenet, 'missile'), { index: 657 }, 'a first name before a synonym');
  assert.deepEqual(lookupClass(imagenet, 'crane').choices.map((c) => c.index), [134, 517]);
  assert.deepEqual(lookupClass(imagenet, 'maillot').choices.map((c) => c.index), [638, 639]);
  assert.deepEqual(lookupClass(imagenet, 'tank suit'), { index: 639 });
  assert.deepEqual(lookupClass(imagenet, 'welsh corgi'), { index: 264 }, 'a name only one class contains');
  assert.deepEqual(lookupClass(imagenet, 'no such thing'), { none: true });
  assert.deepEqual(lookupClass(imagenet, '#1000'), { none: true });
  assert.equal(parseClass(imagenet, 'crane'), null);
});
