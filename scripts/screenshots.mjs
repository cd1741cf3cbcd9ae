// Screenshots of the page for README and for looking at what we built:
//   node scripts/screenshots.mjs [OUT_DIR] [backend]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startServer, launch, shared, root, generate, addImages, dropTwoObjects } from '../tests/e2e/harness.mjs';

const out = path.resolve(process.argv[2] || path.join(root, 'docs/screenshots'));
const backend = process.argv[3] || 'cpu';
fs.mkdirSync(out, { recursive: true });
const server = await startServer();
const { context, close } = await launch({ webgpu: backend === 'webgpu' });
try {
  const page = await context.newPage();
  page.on('console', (m) => { if (m.type() === 'error') console.error('console:', m.text()); });
  page.on('pageerror', (e) => console.error('pageerror:', e.message));
  await page.goto(`${server.url}?backend=${backend}`);
  await page.getByTestId('status').filter({ hasText: /waiting for an image/ }).waitFor({ timeout: 300_000 });
  await page.getByTestId('file-input').setInputFiles(path.join(shared, 'images/cat.jpg'));
  await page.getByTestId('status').filter({ hasText: /^ready$/ }).waitFor({ timeout: 300_000 });
  await page.screenshot({ path: path.join(out, `main${backend === 'cpu' ? '' : '-' + backend}.png`) });
  const block = page.getByTestId('block-inception_4c');
  await block.locator('.block-head').click();
  await block.locator('canvas[data-branch="pool"]').waitFor({ timeout: 300_000 });
  await block.scrollIntoViewIfNeeded();
  await page.evaluate(() => document.querySelector('[data-testid="block-inception_4c"]').scrollIntoView({ block: 'start' }));
  await page.screenshot({ path: path.join(out, `explorer${backend === 'cpu' ? '' : '-' + backend}.png`) });
  // The whole page, to look at (not committed).
  await page.screenshot({ path: path.join(os.tmpdir(), `googlenet-full${backend === 'cpu' ? '' : '-' + backend}.png`), fullPage: true });
  // Presenter mode at 1280×720 (the harness's viewport), the photo at inception 4c.
  await page.getByTestId('present-btn').click();
  for (let i = 0; i < 4; i++) await page.keyboard.press('ArrowRight');
  await page.locator('#p-block-name[data-block="inception_4c"]').waitFor({ timeout: 60_000 });
  await page.locator('#p-block-view canvas[data-branch="pool"]').waitFor({ timeout: 300_000 });
  await page.waitForFunction(() => !document.querySelector('#p-block-view').classList.contains('loading'));
  await page.screenshot({ path: path.join(out, `presenter${backend === 'cpu' ? '' : '-' + backend}.png`) });
  await page.locator('#p-exit').click();
  // "Why?": the cat and the dog in one photo; the evidence for "Egyptian cat".
  await page.evaluate(() => window.scrollTo(0, 0));
  await dropTwoObjects(page);
  await page.getByTestId('explain-find').fill('Egyptian cat');
  await page.getByTestId('explain-find').dispatchEvent('change');
  await page.waitForFunction(() => document.querySelector('[data-testid="explain"]').dataset.state === 'shown', null, { timeout: 300_000 });
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: path.join(out, `explain${backend === 'cpu' ? '' : '-' + backend}.png`) });
  // The fine-tune view after a short run on generated images.
  await page.getByTestId('finetune-tab').click();
  await page.getByTestId('class-name-0').fill('red disc');
  await page.getByTestId('class-name-1').fill('blue stripes');
  for (const cls of [0, 1]) await addImages(page, cls, 4);
  await page.locator('#ft-heldout').setInputFiles(await generate(page, 0, 7));
  await page.getByTestId('finetune-steps').fill('16');
  await page.getByTestId('finetune-start').click();
  await page.waitForFunction(() => JSON.parse(document.querySelector('[data-testid="finetune-log"]').dataset.steps).length >= 16, null, { timeout: 600_000 });
  await page.getByTestId('finetune-stop').and(page.locator(':disabled')).waitFor({ timeout: 600_000 });
  // After the run the page finishes running the frozen layers over the remaining crops.
  await page.getByTestId('finetune-prepared').filter({ hasText: /^All / }).waitFor({ timeout: 600_000 });
  await page.screenshot({ path: path.join(out, `finetune${backend === 'cpu' ? '' : '-' + backend}.png`), fullPage: true });
  console.log('screenshots in', out, 'timing:', await page.getByTestId('timing').textContent());
} finally {
  await close();
  server.close();
}
