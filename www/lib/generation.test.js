import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Generations, Stale } from './generation.js';

test('a newer photo makes the older one stale, and only the newest is current', () => {
  const g = new Generations();
  const a = g.take();
  const b = g.take();
  assert.equal(g.current(a), false);
  assert.equal(g.current(b), true);
  assert.equal(g.settled(), false);
  g.show(b);
  assert.equal(g.settled(), true);
  g.take();
  assert.equal(g.settled(), false, 'a photo on its way unsettles what is shown');
  g.clear();
  assert.equal(g.shown, 0);
});

test('guard passes the value of the current photo and drops an older one, failures included', async () => {
  const g = new Generations();
  const a = g.take();
  assert.equal(await g.guard(a, Promise.resolve(7)), 7);
  let release;
  const slow = new Promise((r) => { release = r; });
  const pending = g.guard(a, slow, 'result');
  g.take(); // a newer photo arrives while the first is still being answered
  release({ top: 'Pembroke' });
  await assert.rejects(pending, (e) => e instanceof Stale && e.stale && /earlier photo/.test(e.message));
  const b = g.current(a) ? a : g.latest;
  await assert.rejects(g.guard(b, Promise.reject(new Error('bad image'))), /bad image/);
  const c = g.take();
  const failing = g.guard(c, new Promise((_, rej) => setTimeout(() => rej(new Error('bad image')), 5)));
  g.take();
  await assert.rejects(failing, (e) => e instanceof Stale, 'an old photo\'s error is not shown either');
});
