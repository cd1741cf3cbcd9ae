import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sniff, route } from './sniff.js';

const bytes = (...xs) => Uint8Array.from(xs.flatMap((x) => (typeof x === 'string' ? [...x].map((c) => c.charCodeAt(0)) : [x])));

test('files are recognised by their content', () => {
  const st = bytes(0x20, 0, 0, 0, 0, 0, 0, 0, '{"__metadata__"');
  assert.equal(sniff(st), 'safetensors');
  assert.equal(sniff(bytes(0x50, 0x4b, 3, 4, 0, 0)), 'pytorch');
  assert.equal(sniff(bytes(0x80, 2, 0x7d, 0x71)), 'pytorch');
  assert.equal(sniff(bytes(0xff, 0xd8, 0xff, 0xe0)), 'image');
  assert.equal(sniff(bytes(0x89, 'PNG\r\n')), 'image');
  assert.equal(sniff(bytes(0, 0, 0, 0x18, 'ftypheic')), 'image');
  assert.equal(sniff(bytes('%PDF-1.7')), 'unknown');
  // A header length of zero or an enormous one is not safetensors.
  assert.equal(sniff(bytes(0, 0, 0, 0, 0, 0, 0, 0, '{')), 'unknown');
  assert.equal(sniff(bytes(0x20, 0, 0, 0, 0, 0, 0, 1, '{')), 'unknown');
  assert.equal(sniff(new Uint8Array(0)), 'unknown');
});

test('content decides the route; the name only when the content says nothing', () => {
  const st = bytes(0x20, 0, 0, 0, 0, 0, 0, 0, '{"a":1}');
  assert.equal(route(st, 'model.st'), 'weights', 'a safetensors file with another extension');
  assert.equal(route(bytes(0xff, 0xd8, 0xff, 0xe0), 'photo.safetensors'), 'image', 'a JPEG named .safetensors');
  assert.equal(route(bytes('garbage!'), 'broken.safetensors'), 'weights', 'unknown content named as weights: the loader explains');
  assert.equal(route(bytes('%PDF-1.7'), 'notes.pdf'), 'image', 'anything else: the classifier explains');
});
