// End-to-end fine-tune in the page: two classes of generated images, 10 steps, on the CPU
// path and on WebGPU (SwiftShader); the log shows three loss series and a falling total; the
// exported file imports again and classifies.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startServer, launch, shared, haveShared, assertCleanText, generate, addImages } from './harness.mjs';

const SKIP = haveShared() ? false : `needs the shared data (weights) at ${shared}`;
const SLOW = 600_000;
let server;
before(async () => { if (!SKIP) server = await startServer(); });
after(() => server?.close());

async function run({ webgpu }) {
  const { context, close } = await launch({ webgpu });
  try {
    const page = await context.newPage();
    page.on('pageerror', (e) => console.error('pageerror:', e.message));
    await page.goto(server.url + (webgpu ? '?backend=webgpu' : '?backend=cpu'));
    await page.getByTestId('status').filter({ hasText: /waiting for an image/ }).waitFor({ timeout: SLOW });
    assert.equal(await page.getByTestId('backend').getAttribute('data-engine'), webgpu ? 'webgpu' : 'threads-relaxed');
    await page.getByTestId('finetune-tab').click();
    // The two starting classes were asked for while the model loaded: that note is gone now.
    assert.doesNotMatch(await page.locator('#ft-status').textContent(), /waiting for the model/);
    await page.getByTestId('class-name-0').fill('red disc');
    await page.getByTestId('class-name-1').fill('blue stripes');
    for (const cls of [0, 1]) await addImages(page, cls, 3);
    // Too few images in a third class: refused up front.
    await page.getByTestId('class-add').click();
    await page.getByTestId('class-files-2').setInputFiles([await generate(page, 0, 5)]);
    await page.locator('.ft-class').nth(2).locator('.count').filter({ hasText: '1 image' }).waitFor();
    await page.getByTestId('finetune-start').click();
    // (On SwiftShader the start waits for the frozen-layer pass already running ahead.)
    await page.locator('#ft-error').filter({ hasText: /at least 3/ }).waitFor({ timeout: webgpu ? SLOW : 10_000 });
    await page.getByTestId('class-files-2').setInputFiles([await generate(page, 0, 6), await generate(page, 1, 6)]);
    await page.locator('.ft-class').nth(2).locator('.count').filter({ hasText: '3 images' }).waitFor();
    await page.getByTestId('finetune-steps').fill('10');
    if (!webgpu) {
      // While the page waits, the frozen layers run ahead for heads-only training: every
      // image's centre crop first (9), of 9 × 10 crops and flips.
      const prepared = page.getByTestId('finetune-prepared');
      await page.waitForFunction(() => {
        const p = document.querySelector('[data-testid="finetune-prepared"]').dataset;
        return p.wanted === '90' && Number(p.ready) >= 9;
      }, null, { timeout: SLOW, polling: 100 });
      // Without crops and flips only the centre crops are wanted: all ready.
      await page.locator('#ft-augment').uncheck();
      await prepared.filter({ hasText: /^All 9 training crops have been through the frozen layers/ }).waitFor({ timeout: SLOW });
      assert.equal(await prepared.getAttribute('data-ready'), '9');
      await page.locator('#ft-augment').check();
      await prepared.filter({ hasText: /of 90 training crops ready/ }).waitFor({ timeout: SLOW });
      await assertCleanText(page, assert);
    }
    if (webgpu) {
      // SwiftShader is slow: small batches, no augmentation (each view's trunk runs once).
      await page.locator('#ft-batch').fill('4');
      await page.locator('#ft-augment').uncheck();
    }
    await page.locator('#ft-lr').fill('0.002');
    await page.getByTestId('finetune-start').click();
    const log = page.getByTestId('finetune-log');
    await page.waitForFunction(() => JSON.parse(document.querySelector('[data-testid="finetune-log"]').dataset.steps).length >= 10, null, { timeout: SLOW, polling: 500 });
    await page.getByTestId('finetune-stop').and(page.locator(':disabled')).waitFor({ timeout: SLOW });
    const steps = JSON.parse(await log.getAttribute('data-steps'));
    assert.equal(steps.length, 10);
    for (const s of steps) {
      for (const k of ['step', 'loss', 'main', 'aux1', 'aux2', 'acc']) assert.ok(Number.isFinite(s[k]), `${k} in ${JSON.stringify(s)}`);
      assert.ok(Math.abs(s.loss - (s.main + 0.3 * s.aux1 + 0.3 * s.aux2)) < 1e-3 * Math.max(1, s.loss), 'total = main + 0.3 aux1 + 0.3 aux2');
    }
    assert.ok(steps.some((s) => s.aux1 !== s.main) && steps.some((s) => s.aux2 !== s.aux1), 'three separate loss series');
    const head = (steps[0].loss + steps[1].loss) / 2, tail = (steps[8].loss + steps[9].loss) / 2;
    assert.ok(tail < head, `total loss should fall: ${head} → ${tail}`);
    assert.equal(await page.getByTestId('finetune-progress').evaluate((p) => p.value), 10);
    // Apply, export, re-import, classify.
    if (!webgpu) {
      // Heads only: applying keeps the frozen layers, so the crops run through them so far are
      // kept too. Once all 90 are ready, the first count after applying is still all 90 (a
      // dropped cache would restart at 1).
      const prepared = page.getByTestId('finetune-prepared');
      await prepared.filter({ hasText: /^All 90 training crops/ }).waitFor({ timeout: SLOW });
      await prepared.evaluate((p) => { p.dataset.ready = ''; });
      await page.locator('#ft-apply').click();
      await page.waitForFunction(() => document.querySelector('[data-testid="finetune-prepared"]').dataset.ready !== '', null, { timeout: SLOW, polling: 50 });
      assert.equal(await prepared.getAttribute('data-ready'), '90');
    } else {
      await page.locator('#ft-apply').click();
    }
    // Leaving the page with a fine-tune that was not exported asks first; once exported it does not.
    const leaving = () => page.evaluate(() => { const e = new Event('beforeunload', { cancelable: true }); window.dispatchEvent(e); return e.defaultPrevented; });
    assert.equal(await leaving(), true, 'an unexported fine-tune: the browser asks before leaving');
    await page.locator('#ft-export').and(page.locator(':enabled')).waitFor({ timeout: SLOW });
    const [download] = await Promise.all([page.waitForEvent('download'), page.locator('#ft-export').click()]);
    const file = path.join(os.tmpdir(), `ft-${process.pid}-${webgpu ? 'gpu' : 'cpu'}.safetensors`);
    await download.saveAs(file);
    assert.equal(await leaving(), false, 'exported: leaving does not ask');
    assert.ok(fs.statSync(file).size > 20e6, 'the whole network is exported');
    await page.locator('.tab[data-view="classify"]').click();
    // Before/after: heads-only training leaves the blocks' activations unchanged, and says so.
    await page.getByTestId('status').evaluate((e) => { e.textContent = 'sent'; });
    await page.getByTestId('file-input').setInputFiles(await generate(page, 0, 8));
    await page.getByTestId('status').filter({ hasText: /^ready$/ }).waitFor({ timeout: SLOW });
    const block = page.getByTestId('block-inception_4c');
    await block.locator('.block-head').click();
    await block.locator('.before-after').filter({ hasText: /Unchanged/ }).waitFor({ timeout: SLOW });
    assert.equal(await block.locator('.before-after canvas').count(), 4);
    // The aux heads are trained now: "Why?" offers them, from the blocks up to their tap.
    await page.getByTestId('explain-head').selectOption('aux1');
    await page.waitForFunction(() => document.querySelector('[data-testid="explain"]').dataset.state === 'shown', null, { timeout: SLOW, polling: 250 });
    const ex = page.getByTestId('explain');
    assert.equal(await ex.getAttribute('data-head'), 'aux1');
    assert.equal(await ex.getAttribute('data-layer'), 'inception_4a');
    assert.equal(await page.getByTestId('explain-block').locator('option:disabled').count(), 6, 'aux1 reads 4a: 4b … 5b cannot explain it');
    assert.match(await page.getByTestId('explain-status').textContent(), /aux1 \(after 4a\)/);
    // Trained and applied, a block open with its before/after row: no leftovers in the text.
    await assertCleanText(page, assert);
    await block.locator('.block-head').click();
    await page.locator('#own-weights').setInputFiles(file);
    await page.getByTestId('status').filter({ hasText: /waiting for an image|ready/ }).waitFor({ timeout: SLOW });
    await page.locator('#weights-text').filter({ hasText: /3 classes/ }).waitFor({ timeout: SLOW });
    await page.getByTestId('status').evaluate((e) => { e.textContent = 'sent'; });
    await page.getByTestId('file-input').setInputFiles(await generate(page, 1, 9));
    await page.getByTestId('status').filter({ hasText: /^ready$/ }).waitFor({ timeout: SLOW });
    const labels = await page.getByTestId('top5').locator('li').evaluateAll((lis) => lis.map((l) => l.dataset.label));
    assert.deepEqual([...labels].sort(), ['blue stripes', 'class C', 'red disc']);
    // Trained, applied, re-imported, every block opened before: no leftovers in the text.
    await assertCleanText(page, assert);
    fs.rmSync(file);
  } finally { await close(); }
}

test('fine-tune on the CPU path', { skip: SKIP, timeout: 1_200_000 }, () => run({ webgpu: false }));
test('fine-tune on WebGPU (SwiftShader)', { skip: SKIP, timeout: 1_800_000 }, () => run({ webgpu: true }));
