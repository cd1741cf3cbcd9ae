// Shared by the browser tests, screenshots and the browser benchmark: start the demo server,
// launch Debian's Chromium headless through playwright-core in a fresh profile.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const shared = path.resolve(process.env.GOOGLENET_SHARED || path.join(root, '..', 'shared'));

export function haveShared() {
  const ok = fs.existsSync(path.join(shared, 'weights/bvlc_googlenet.safetensors'));
  if (!ok && process.env.CI === 'true') throw new Error(`CI=true but the shared data is missing at ${shared}`);
  return ok;
}

/**
 * The demo server on a random port (or `port`: the same origin again, e.g. after `close()`, for
 * the offline tests); `env` adds to its environment (GOOGLENET_BUILD_SALT: a new build id).
 */
export async function startServer({ port = 20000 + Math.floor(Math.random() * 20000), env = {} } = {}) {
  const proc = spawn(process.execPath, [path.join(root, 'scripts/serve.mjs'), String(port)], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env } });
  await new Promise((resolve, reject) => {
    proc.stdout.on('data', (d) => { if (String(d).includes('http://')) resolve(); });
    proc.on('exit', (code) => reject(new Error(`server exited with ${code}`)));
  });
  const exited = new Promise((r) => proc.once('exit', r));
  return { url: `http://127.0.0.1:${port}/`, port, close: () => { proc.kill(); return exited; } };
}

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

/** @param {{webgpu?: boolean}} opts */
export async function launch({ webgpu = false } = {}) {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'googlenet-chrome-'));
  const args = ['--no-sandbox', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'];
  if (webgpu) args.push('--enable-unsafe-webgpu');
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true, args, viewport: { width: 1280, height: 720 },
  });
  return {
    context,
    close: async () => { await context.close(); fs.rmSync(profile, { recursive: true, force: true }); },
  };
}

/**
 * A new tab at `url` (page errors logged); unless `wait` is false, once the model is ready
 * ("waiting for an image").
 */
export async function openPage(context, url, { wait = true, timeout = 300_000 } = {}) {
  const page = await context.newPage();
  page.on('pageerror', (e) => console.error('pageerror:', e.message));
  await page.goto(url);
  if (wait) await page.getByTestId('status').filter({ hasText: /waiting for an image/ }).waitFor({ timeout });
  return page;
}

/** PNG bytes drawn in the page: class 0 red discs, class 1 blue stripes, with jitter. */
export async function generate(page, cls, k) {
  const b64 = await page.evaluate(async ({ cls, k }) => {
    const c = new OffscreenCanvas(160 + k * 16, 160);
    const g = c.getContext('2d');
    g.fillStyle = cls === 0 ? '#efe4d6' : '#eef2f8';
    g.fillRect(0, 0, c.width, c.height);
    if (cls === 0) {
      g.fillStyle = `rgb(${200 + k * 10}, ${30 + k * 8}, 30)`;
      g.beginPath(); g.arc(70 + k * 10, 80, 40 + k * 4, 0, Math.PI * 2); g.fill();
    } else {
      g.fillStyle = `rgb(30, ${50 + k * 10}, ${190 + k * 10})`;
      for (let x = k * 3; x < c.width; x += 22) g.fillRect(x, 0, 11, c.height);
    }
    const blob = await c.convertToBlob({ type: 'image/png' });
    const bytes = new Uint8Array(await blob.arrayBuffer());
    let s = ''; for (const b of bytes) s += String.fromCharCode(b);
    return btoa(s);
  }, { cls, k });
  return { name: `c${cls}-${k}.png`, mimeType: 'image/png', buffer: Buffer.from(b64, 'base64') };
}


/** The page's visible text holds no leftovers of code (`null`, `undefined`, `NaN`, `[object Object]`). */
export async function assertCleanText(page, assert) {
  const text = await page.evaluate(() => document.body.innerText);
  for (const bad of [/\bnull\b/, /\bundefined\b/, /\bNaN\b/, /\[object Object\]/]) assert.doesNotMatch(text, bad, `page text contains ${bad}`);
  return text;
}

/**
 * On the fine-tune tab: give class row `cls` `n` generated images (pattern `cls % 2`, i.e. red
 * discs or blue stripes, variants `from`…), and wait until the page counts them (unless the
 * model is still loading and `wait` is false).
 */
export async function addImages(page, cls, n, { from = 0, wait = true } = {}) {
  const files = [];
  for (let k = 0; k < n; k++) files.push(await generate(page, cls % 2, from + k));
  await page.getByTestId(`class-files-${cls}`).setInputFiles(files);
  if (wait) await page.locator('.ft-class').nth(cls).locator('.count').filter({ hasText: `${n} image` }).waitFor({ timeout: 60_000 });
}

/** Drop a 448×448 PNG: the cat (centre-cropped) top left, the dog bottom right, grey elsewhere. */
export async function dropTwoObjects(page) {
  const b64 = (name) => fs.readFileSync(path.join(shared, 'images', name)).toString('base64');
  await page.getByTestId('status').evaluate((e) => { e.textContent = 'sent'; });
  await page.evaluate(async ({ cat, dog }) => {
    const c = new OffscreenCanvas(448, 448);
    const g = c.getContext('2d');
    g.fillStyle = '#808080';
    g.fillRect(0, 0, 448, 448);
    for (const [b, x, y] of [[cat, 0, 0], [dog, 224, 224]]) {
      const bmp = await createImageBitmap(new Blob([Uint8Array.from(atob(b), (ch) => ch.charCodeAt(0))]));
      const s = Math.min(bmp.width, bmp.height);
      g.drawImage(bmp, (bmp.width - s) / 2, (bmp.height - s) / 2, s, s, x, y, 224, 224);
    }
    const file = new File([await c.convertToBlob({ type: 'image/png' })], 'cat-and-dog.png', { type: 'image/png' });
    const dt = new DataTransfer();
    dt.items.add(file);
    document.querySelector('[data-testid="drop-zone"]').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
  }, { cat: b64('cat.jpg'), dog: b64('dog.jpg') });
  await page.getByTestId('status').filter({ hasText: /^ready$/ }).waitFor({ timeout: 300_000 });
}
