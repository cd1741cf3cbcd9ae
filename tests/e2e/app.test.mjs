// End-to-end: the page in headless Chromium, on the CPU path and on WebGPU (SwiftShader).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startServer, launch, openPage, shared, haveShared, assertCleanText } from './harness.mjs';

const SKIP = haveShared() ? false : `needs the shared data (weights, test photos) at ${shared}`;
const expected = SKIP ? {} : JSON.parse(fs.readFileSync(path.join(shared, 'images/expected_top5.json'), 'utf8'));
const BLOCKS = ['3a', '3b', '4a', '4b', '4c', '4d', '4e', '5a', '5b'].map((b) => `inception_${b}`);
// SwiftShader emulates the GPU on the CPU: generous, but finite, waits.
const SLOW = 300_000;

let server;
before(async () => { if (!SKIP) server = await startServer(); });
after(() => server?.close());

const open = (context, query) => openPage(context, server.url + query, { timeout: SLOW });

/** The engine the page says it runs (the badge's data attributes). */
async function engineOf(page) {
  const b = page.getByTestId('backend');
  return { backend: await b.getAttribute('data-backend'), engine: await b.getAttribute('data-engine'), threads: Number(await b.getAttribute('data-threads')) };
}

async function top1(page) {
  await page.getByTestId('status').filter({ hasText: /^ready$/ }).waitFor({ timeout: SLOW });
  const li = page.getByTestId('top5').locator('li').first();
  return { label: await li.getAttribute('data-label'), prob: Number(await li.getAttribute('data-prob')) };
}

async function pick(page, file) {
  await page.getByTestId('status').evaluate((e) => { e.textContent = 'sent'; });
  await page.getByTestId('file-input').setInputFiles(file);
}

async function drop(page, file) {
  const b64 = fs.readFileSync(file).toString('base64');
  await page.getByTestId('status').evaluate((e) => { e.textContent = 'sent'; });
  await page.evaluate(({ b64, name }) => {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const dt = new DataTransfer();
    dt.items.add(new File([bytes], name, { type: 'image/jpeg' }));
    document.querySelector('[data-testid="drop-zone"]').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
  }, { b64, name: path.basename(file) });
}

async function checkPhotos(page) {
  for (const [name, how] of [['cat.jpg', pick], ['dog.jpg', drop]]) {
    await how(page, path.join(shared, 'images', name));
    const got = await top1(page);
    assert.equal(got.label, expected[name][0].label, `${name} top-1`);
    assert.ok(Math.abs(got.prob - expected[name][0].prob) <= 0.02, `${name} prob ${got.prob}`);
  }
  // The first result comes after page load plus at least one whole classification.
  const timing = page.getByTestId('timing');
  const warm = Number(await timing.getAttribute('data-warm-ms'));
  const cold = Number(await timing.getAttribute('data-cold-ms'));
  assert.ok(warm > Number(await timing.getAttribute('data-forward-ms')) * 0.999, `whole classify ${warm} ms includes the forward`);
  assert.ok(cold >= warm, `first result ${cold} ms after load, one classification ${warm} ms`);
}

async function checkBlocks(page) {
  for (const name of BLOCKS) {
    const block = page.getByTestId(`block-${name}`);
    await block.locator('.block-head').click();
    for (const branch of ['1x1', '3x3', '5x5', 'pool']) {
      const canvas = block.locator(`canvas[data-branch="${branch}"]`);
      await canvas.waitFor({ timeout: SLOW });
      const distinct = await canvas.evaluate((c) => {
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        const seen = new Set();
        for (let i = 0; i < d.length; i += 4) seen.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
        return seen.size;
      });
      assert.ok(distinct > 8, `${name} ${branch}: canvas is blank (${distinct} colours)`);
    }
  }
  // Every block open at once: the visible text holds no leftovers of code.
  const text = await assertCleanText(page, assert);
  assert.match(text, /max pool 3×3 \/ 2, rounding up/, 'pool kernels come from the model');
  for (const name of BLOCKS) await page.getByTestId(`block-${name}`).locator('.block-head').click();
}

test('CPU engine on threads: classifies the test photos, explorer shows live branches, bad input is refused', { skip: SKIP, timeout: 900_000 }, async () => {
  const { context, close } = await launch();
  try {
    const page = await open(context, '?backend=cpu');
    const cores = await page.evaluate(() => navigator.hardwareConcurrency);
    const n = Math.min(cores, 16);
    // (On one core the one-thread build runs: it is the faster one there.)
    assert.deepEqual(await engineOf(page), { backend: 'cpu', engine: n > 1 ? 'threads-relaxed' : 'cpu', threads: n });
    assert.match(await page.getByTestId('backend').textContent(), new RegExp(`^CPU, ${n} threads? · WebAssembly`));
    assert.equal(await page.getByTestId('weights-progress').evaluate((p) => p.value === p.max && p.max > 1), true);
    await checkPhotos(page);
    await checkBlocks(page);
    // A text file named .jpg: a clear message, and the page keeps working.
    const fake = path.join(os.tmpdir(), `not-a-photo-${process.pid}.jpg`);
    fs.writeFileSync(fake, 'this is plain text pretending to be a JPEG');
    await pick(page, fake);
    await page.getByTestId('error').filter({ hasText: /not an image/ }).waitFor({ timeout: 60_000 });
    assert.ok(await page.getByTestId('error').isVisible());
    await pick(page, path.join(shared, 'images/cat.jpg'));
    assert.equal((await top1(page)).label, expected['cat.jpg'][0].label);
    assert.equal(await page.getByTestId('error').isVisible(), false);
    fs.rmSync(fake);
  } finally { await close(); }
});

test('WebGPU (SwiftShader): same answers, live branch canvases', { skip: SKIP, timeout: 1_800_000 }, async () => {
  const { context, close } = await launch({ webgpu: true });
  try {
    const page = await open(context, '?backend=webgpu');
    assert.equal((await engineOf(page)).engine, 'webgpu');
    assert.match(await page.getByTestId('backend').textContent(), /^WebGPU · .*swiftshader/i);
    await checkPhotos(page);
    const block = page.getByTestId('block-inception_4c');
    await block.locator('.block-head').click();
    await block.locator('canvas[data-branch="pool"]').waitFor({ timeout: SLOW });
    assert.equal(await block.locator('canvas[data-branch]').count(), 4);
  } finally { await close(); }
});

test('WebGPU failures fall back to the CPU automatically', { skip: SKIP, timeout: 900_000 }, async () => {
  const { context, close } = await launch({ webgpu: true });
  try {
    // Initialisation fails.
    let page = await open(context, '?backend=webgpu&fault=webgpu-init');
    assert.equal((await engineOf(page)).engine, 'threads-relaxed', 'falls back to the threaded CPU engine');
    assert.match(await page.locator('#backend-reason').textContent(), /WebGPU failed to start/);
    await pick(page, path.join(shared, 'images/dog.jpg'));
    assert.equal((await top1(page)).label, expected['dog.jpg'][0].label);
    await page.close();
    // The device is lost in the middle of a classification: the page restarts on the CPU
    // and still answers.
    page = await open(context, '?backend=webgpu&fault=webgpu-lost');
    assert.equal((await engineOf(page)).engine, 'webgpu');
    await pick(page, path.join(shared, 'images/cat.jpg'));
    assert.equal((await top1(page)).label, expected['cat.jpg'][0].label);
    assert.equal((await engineOf(page)).backend, 'cpu');
    assert.match(await page.locator('#backend-reason').textContent(), /switched to the CPU/);
  } finally { await close(); }
  // No WebGPU at all (no --enable-unsafe-webgpu): auto picks the CPU and says why.
  const plain = await launch();
  try {
    const page = await open(plain.context, '');
    assert.equal((await engineOf(page)).backend, 'cpu');
    assert.match(await page.locator('#backend-reason').textContent(), /Fallback: .*(WebGPU|adapter|software)/);
  } finally { await plain.close(); }
});

test('CPU engine without cross-origin isolation (one thread) or relaxed SIMD (plain-SIMD threads): same answers, and says why', { skip: SKIP, timeout: 600_000 }, async () => {
  const { context, close } = await launch();
  try {
    // (?sw=0: no service worker, which would otherwise add the headers; see offline.test.mjs.)
    const page = await open(context, '?backend=cpu&isolate=0&sw=0');
    assert.equal(await page.evaluate(() => crossOriginIsolated), false);
    assert.deepEqual(await engineOf(page), { backend: 'cpu', engine: 'cpu', threads: 1 });
    assert.match(await page.locator('#backend-reason').textContent(), /one thread: the page is not cross-origin isolated/);
    await checkPhotos(page);
    // The threaded engine failing to start ends on the one-thread engine, said as a fallback.
    const broken = await open(context, '?backend=cpu&fault=threads-init');
    assert.deepEqual(await engineOf(broken), { backend: 'cpu', engine: 'cpu', threads: 1 });
    assert.match(await broken.locator('#backend-reason').textContent(), /^Fallback: .*threaded CPU engine failed to start/);
    await pick(broken, path.join(shared, 'images/dog.jpg'));
    assert.equal((await top1(broken)).label, expected['dog.jpg'][0].label);
    // Isolated, but a browser without relaxed SIMD: the plain-SIMD threaded build on every
    // core, said so, same answers. Chromium itself has it: the default is the relaxed build.
    const plainSimd = await open(context, '?backend=cpu&relaxed=0&threads=2');
    assert.equal(await plainSimd.evaluate(() => crossOriginIsolated), true);
    assert.deepEqual(await engineOf(plainSimd), { backend: 'cpu', engine: 'threads', threads: 2 });
    assert.match(await plainSimd.locator('#backend-reason').textContent(), /plain SIMD: this browser lacks WebAssembly relaxed SIMD/);
    assert.match(await plainSimd.getByTestId('backend').textContent(), /SIMD128/);
    await checkPhotos(plainSimd);
    const threaded = await open(context, '?backend=cpu');
    assert.equal((await engineOf(threaded)).engine, 'threads-relaxed', 'Chromium passes the relaxed SIMD probe');
    assert.match(await threaded.getByTestId('backend').textContent(), /relaxed SIMD/);
  } finally { await close(); }
});

test('auto measures WebGPU against the CPU engine once, remembers the winner and says why', { skip: SKIP, timeout: 1_200_000 }, async () => {
  const { context, close } = await launch({ webgpu: true });
  try {
    let page = await open(context, '');
    // First visit: the CPU engine answers first, then the race runs on the same image.
    assert.equal((await engineOf(page)).backend, 'cpu');
    assert.match(await page.locator('#backend-reason').textContent(), /measured against it after the first result/);
    await pick(page, path.join(shared, 'images/cat.jpg'));
    assert.equal((await top1(page)).label, expected['cat.jpg'][0].label);
    await page.waitForFunction(() => document.body.dataset.race, null, { timeout: SLOW });
    // SwiftShader emulates the GPU on the CPU: the measurement, not a name list, keeps the CPU.
    assert.equal(await page.evaluate(() => document.body.dataset.race), 'cpu');
    const said = await page.locator('#backend-reason').textContent();
    assert.match(said, /^measured on this machine: CPU, \d+ threads?: \d+ ms; WebGPU: \d+ ms; \d+ threads? on \d+ logical cores?, relaxed SIMD$/);
    const [cpuMs, gpuMs] = said.match(/\d+ ms/g).map((x) => Number(x.split(' ')[0]));
    assert.ok(gpuMs > cpuMs, `WebGPU ${gpuMs} ms lost to the CPU's ${cpuMs} ms`);
    await page.close();
    // Second visit: the remembered result decides at once; no second race.
    page = await open(context, '');
    assert.equal((await engineOf(page)).backend, 'cpu');
    assert.equal(await page.locator('#backend-reason').textContent(), said);
    await pick(page, path.join(shared, 'images/dog.jpg'));
    assert.equal((await top1(page)).label, expected['dog.jpg'][0].label);
    assert.equal(await page.evaluate(() => document.body.dataset.race), undefined);
    await assertCleanText(page, assert);
  } finally { await close(); }
});
