// End-to-end: "Why?" (Grad-CAM) in the page, on the threaded CPU engine and on WebGPU
// (SwiftShader). A photo composed of the cat (top left) and the dog (bottom right): each class's
// evidence is drawn over its own animal.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { startServer, launch, openPage, shared, haveShared, assertCleanText, dropTwoObjects } from './harness.mjs';

const SKIP = haveShared() ? false : `needs the shared data (weights, test photos) at ${shared}`;
const SLOW = 300_000;

let server;
before(async () => { if (!SKIP) server = await startServer(); });
after(() => server?.close());

const open = (context, query) => openPage(context, server.url + query, { timeout: SLOW });

/** Wait for the explanation of `cls` to be drawn; its data attributes. */
async function shown(page, cls) {
  await page.waitForFunction((c) => {
    const d = document.querySelector('[data-testid="explain"]').dataset;
    return d.state === 'shown' && d.cls === String(c);
  }, cls, { timeout: SLOW, polling: 250 });
  return page.getByTestId('explain').evaluate((e) => ({ ...e.dataset }));
}

/** Mean brightness of the overlay's top-left and bottom-right quarters. */
async function quarters(page) {
  return page.locator('#overlay').evaluate((c) => {
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    const half = c.width / 2;
    let tl = 0, br = 0;
    for (let y = 0; y < c.height; y++) for (let x = 0; x < c.width; x++) {
      const v = d[(y * c.width + x) * 4] + d[(y * c.width + x) * 4 + 1] + d[(y * c.width + x) * 4 + 2];
      if (y < half && x < half) tl += v; else if (y >= half && x >= half) br += v;
    }
    return { tl, br, shown: c.classList.contains('shown') && c.dataset.kind === 'explain' };
  });
}

test('CPU engine: "Why?" puts each class\'s evidence on its own animal; any class by name; any block', { skip: SKIP, timeout: 900_000 }, async () => {
  const { context, close } = await launch();
  try {
    const page = await open(context, '?backend=cpu');
    assert.equal(await page.getByTestId('explain').isVisible(), false, 'nothing to explain before an image');
    await dropTwoObjects(page);
    const top = await page.getByTestId('top5').locator('li').evaluateAll((lis) => lis.map((l) => Number(l.dataset.index)));
    // On: the top-1 class, on the default block.
    await page.getByTestId('explain-toggle').click();
    let d = await shown(page, top[0]);
    assert.equal(d.layer, 'inception_4e');
    assert.equal(d.head, 'main');
    assert.equal(await page.getByTestId('explain-toggle').getAttribute('aria-pressed'), 'true');
    // Egyptian cat, typed by name: its evidence is top left.
    await page.getByTestId('explain-find').fill('Egyptian cat');
    await page.getByTestId('explain-find').dispatchEvent('change');
    d = await shown(page, 285);
    assert.match(d.where, /left/, `Egyptian cat's evidence at the ${d.where}`);
    let q = await quarters(page);
    assert.ok(q.shown && q.tl > 1.5 * q.br, `cat: overlay top-left ${q.tl} vs bottom-right ${q.br}`);
    const status = await page.getByTestId('explain-status').textContent();
    assert.match(status, /^Evidence for “Egyptian cat” in inception_4e: strongest at the [a-z ]*left[a-z ]*\. \(main classifier, logit -?\d+\.\d\d\) \d+% of the image/);
    assert.match(status, /\d+ ms on CPU, \d+ threads?\.$/);
    // Pembroke, from a click on its top-5 row: bottom right.
    await page.getByTestId('top5').locator('li[data-index="263"] .label').click();
    d = await shown(page, 263);
    assert.match(d.where, /right/, `Pembroke's evidence at the ${d.where}`);
    q = await quarters(page);
    assert.ok(q.tl * 1.5 < q.br, `dog: overlay top-left ${q.tl} vs bottom-right ${q.br}`);
    // Another block: 5b (7×7).
    await page.getByTestId('explain-block').selectOption({ label: 'inception_5b (7×7)' });
    await page.waitForFunction(() => document.querySelector('[data-testid="explain"]').dataset.layer === 'inception_5b', null, { timeout: SLOW });
    // Aux heads are untrained in the BVLC release: not offered.
    assert.equal(await page.locator('#explain-head-label').isVisible(), false);
    // A name that is no class: said, nothing breaks.
    await page.getByTestId('explain-find').fill('flux capacitor');
    await page.getByTestId('explain-find').dispatchEvent('change');
    await page.getByTestId('explain-status').filter({ hasText: 'No class is called “flux capacitor”.' }).waitFor();
    // A block view takes the overlay: the explanation switches off; a new image keeps it off.
    await page.getByTestId('block-inception_4a').locator('.block-head').click();
    await page.locator('#overlay[data-kind="block"]').waitFor({ timeout: SLOW });
    assert.equal(await page.getByTestId('explain-toggle').getAttribute('aria-pressed'), 'false');
    await assertCleanText(page, assert);
  } finally { await close(); }
});

test('WebGPU (SwiftShader): "Why?" explains the top-1 with autodiff on the GPU engine', { skip: SKIP, timeout: 1_800_000 }, async () => {
  const { context, close } = await launch({ webgpu: true });
  try {
    const page = await open(context, '?backend=webgpu');
    assert.equal(await page.getByTestId('backend').getAttribute('data-engine'), 'webgpu');
    await page.getByTestId('status').evaluate((e) => { e.textContent = 'sent'; });
    await page.getByTestId('file-input').setInputFiles(path.join(shared, 'images/cat.jpg'));
    await page.getByTestId('status').filter({ hasText: /^ready$/ }).waitFor({ timeout: SLOW });
    await page.getByTestId('explain-toggle').click();
    const d = await shown(page, 285);
    assert.equal(d.layer, 'inception_4e');
    const q = await quarters(page);
    assert.ok(q.shown && q.tl + q.br > 0, 'the overlay is drawn');
    assert.match(await page.getByTestId('explain-status').textContent(), /ms on WebGPU/);
    await assertCleanText(page, assert);
  } finally { await close(); }
});
