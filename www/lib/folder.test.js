import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isImageName, imagesFromEntries, imagesFromFiles, step, counterText } from './folder.js';

/** A fake FileSystemEntry tree: objects are directories, strings are files; batches of 2 like Chrome's 100. */
function entry(name, node) {
  if (typeof node === 'string') return { name, isFile: true, isDirectory: false, file: (ok, bad) => (node === 'broken' ? bad(new Error('gone')) : ok({ name, body: node })) };
  const kids = Object.entries(node).map(([n, v]) => entry(n, v));
  return {
    name, isFile: false, isDirectory: true,
    createReader() {
      let at = 0;
      return { readEntries(ok) { const batch = kids.slice(at, at + 2); at += 2; setTimeout(() => ok(batch)); } };
    },
  };
}

test('images only, by name', () => {
  for (const n of ['a.jpg', 'B.JPEG', 'x.png', 'y.webp', 'z.gif', 'w.bmp', 'v.avif', 'dir/u.heic']) assert.ok(isImageName(n), n);
  for (const n of ['notes.txt', 'model.safetensors', '.DS_Store', '._a.jpg', 'dir/.hidden.png', 'jpg']) assert.ok(!isImageName(n), n);
});

test('a dropped folder is read recursively, in batches, images only, sorted by name', async () => {
  const tree = entry('talk', {
    'img10.jpg': '10', 'img2.jpg': '2', 'notes.txt': 'no', 'Img1.png': '1',
    birds: { 'b.jpg': 'b', 'a.jpg': 'a', deeper: { 'c.png': 'c' } },
    'broken.jpg': 'broken',
  });
  const got = await imagesFromEntries([tree, null]);
  assert.deepEqual(got.map((g) => g.path), ['talk/birds/a.jpg', 'talk/birds/b.jpg', 'talk/birds/deeper/c.png', 'talk/Img1.png', 'talk/img2.jpg', 'talk/img10.jpg']);
  assert.deepEqual(got.map((g) => g.file.body), ['a', 'b', 'c', '1', '2', '10']);
  // Loose files dropped beside a folder.
  const mixed = await imagesFromEntries([entry('z.jpg', 'z'), entry('d', { 'y.jpg': 'y' })]);
  assert.deepEqual(mixed.map((g) => g.path), ['d/y.jpg', 'z.jpg']);
  assert.deepEqual(await imagesFromEntries([entry('empty', {})]), []);
});

test('picked files keep their folder order', () => {
  const f = (name, rel, type = 'image/jpeg') => ({ name, webkitRelativePath: rel, type });
  const got = imagesFromFiles([f('b.jpg', 'talk/b.jpg'), f('a.txt', 'talk/a.txt', 'text/plain'), f('a.jpg', 'talk/sub/a.jpg'), f('c.png', '', 'image/png')]);
  assert.deepEqual(got.map((g) => g.path), ['c.png', 'talk/b.jpg', 'talk/sub/a.jpg']);
});

test('stepping wraps around and the counter reads "3 / 12 · name"', () => {
  assert.equal(step(-1, 3), 0);
  assert.equal(step(0, 3), 1);
  assert.equal(step(2, 3), 0);
  assert.equal(step(0, 3, -1), 2);
  assert.equal(step(-1, 3, -1), 2);
  assert.equal(step(0, 0), -1);
  assert.equal(counterText(2, 12, 'talk/birds/cat.jpg'), '3 / 12 · cat.jpg');
  assert.equal(counterText(-1, 12, 'x'), '');
  assert.equal(counterText(0, 0, 'x'), '');
});
