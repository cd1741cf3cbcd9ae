// Browser benchmark, one script, one Chromium: the page's CPU engines (burn-flex in wasm, one
// thread and on 1, 2 and hardwareConcurrency worker threads) against ONNX Runtime Web's wasm
// backend at the same thread counts, same BVLC weights; cold start (weights uncached and
// cached); download sizes per engine; wasm memory; fine-tune step times.
//   node bench/browser.mjs   (after scripts/build-web.sh; prints JSON)
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { startServer, launch, shared, root, generate } from '../tests/e2e/harness.mjs';

const ITERS = Number(process.env.ITERS || 15);
const server = await startServer();
const out = { machine: null, chromium: null };
const median = (a) => [...a].sort((x, y) => x - y)[a.length >> 1];

async function ready(page, query) {
  const t0 = Date.now();
  await page.goto(server.url + query);
  await page.getByTestId('status').filter({ hasText: /waiting for an image/ }).waitFor({ timeout: 600_000 });
  return Date.now() - t0;
}

async function classify(page, file) {
  await page.getByTestId('status').evaluate((e) => { e.textContent = 'sent'; });
  await page.getByTestId('file-input').setInputFiles(file);
  await page.getByTestId('status').filter({ hasText: /^ready$/ }).waitFor({ timeout: 600_000 });
  const t = page.getByTestId('timing');
  return {
    forward: Number(await t.getAttribute('data-forward-ms')), warm: Number(await t.getAttribute('data-warm-ms')), cold: Number(await t.getAttribute('data-cold-ms')),
    wasmBytes: Number(await t.getAttribute('data-wasm-bytes')), start: JSON.parse(await t.getAttribute('data-start') || 'null'),
  };
}

const cat = path.join(shared, 'images/cat.jpg');
{
  const { context, close } = await launch();
  try {
    out.chromium = context.browser()?.version() ?? 'chromium';
    // Cold start, weights not cached (fresh profile), then cached (same profile, reload).
    let page = await context.newPage();
    await ready(page, '?backend=cpu');
    const uncached = await classify(page, cat);
    await page.close();
    page = await context.newPage();
    await ready(page, '?backend=cpu');
    const cached = await classify(page, cat);
    out.cold_start_ms = { weights_uncached: uncached.cold, weights_cached: cached.cold };
    // The cached start's timeline (page ms): model start asked, worker running, engine ready,
    // weights read (ms), weights loaded into the model (ms), page ready.
    out.cold_start_phases = { weights_uncached: uncached.start, weights_cached: cached.start };
    out.wasm_memory_bytes = cached.wasmBytes;
    await page.close();
    // Warm latency, ours and the peer's, per thread count. Both pages stay open and take turns,
    // ROUNDS rounds of ITERS runs each, so a slow minute of a shared machine falls on both.
    // Ours: the forward plus the read of the logits, the last image run back to back in the
    // worker with nothing drawn in between (as ORT Web's page loops `session.run`); and, from
    // the page's own classifications, that forward and everything the page does per image.
    const cores = await (await context.newPage()).evaluate(() => navigator.hardwareConcurrency);
    const counts = [...new Set([1, 2, cores])];
    const ROUNDS = Number(process.env.ROUNDS || 4);
    const oursPage = async (query) => {
      const p = await context.newPage();
      await ready(p, query);
      await classify(p, cat);
      const warm = [], fwd = [];
      for (let i = 0; i < ITERS; i++) { const r = await classify(p, cat); warm.push(r.warm); fwd.push(r.forward); }
      const engine = await p.getByTestId('backend').getAttribute('data-engine');
      return { p, row: { engine, page_forward_median_ms: median(fwd), per_image_median_ms: median(warm) } };
    };
    const stages = async (p) => Object.fromEntries((await p.evaluate((n) => globalThis.googlenetBench.stageTimes(n), ITERS)).map((r) => [r.stage, Math.round(r.ms * 100) / 100]));
    const summary = (t) => ({ median_ms: median(t), min_ms: Math.min(...t), runs: t.length });
    // What a visitor's page picks (the threaded engine on every core, here).
    {
      const { p, row } = await oursPage('?backend=cpu&bench=1');
      out.ours = { default_page: { ...row, ...summary(await p.evaluate((n) => globalThis.googlenetBench.forwards(n), ROUNDS * ITERS)) } };
      await p.close();
    }
    out.ort_web_wasm = {};
    for (const n of counts) {
      const { p, row } = await oursPage(`?backend=cpu&threads=${n}&bench=1`);
      const o = await context.newPage();
      await o.goto(`${server.url}bench/ort-web.html?iters=${ITERS}&threads=${n}`);
      await o.waitForFunction(() => window.result, null, { timeout: 600_000 });
      const first = await o.evaluate(() => window.result);
      const ours = [], peer = [];
      for (let r = 0; r < ROUNDS; r++) {
        ours.push(...await p.evaluate((k) => globalThis.googlenetBench.forwards(k), ITERS));
        peer.push(...await o.evaluate((k) => window.runs(k), ITERS));
      }
      out.ours[`threads_${n}`] = { ...row, ...summary(ours), stages: await stages(p) };
      out.ort_web_wasm[`threads_${n}`] = { ...summary(peer), threads: first.threads, first_ms: first.first_ms, version: first.version };
      await p.close();
      await o.close();
    }
    // The plain-SIMD threaded build (browsers without relaxed SIMD) on every core, for scale.
    if (cores > 1) {
      const { p, row } = await oursPage(`?backend=cpu&threads=${cores}&relaxed=0&bench=1`);
      out.ours_plain_simd = { [`threads_${cores}`]: { ...row, ...summary(await p.evaluate((k) => globalThis.googlenetBench.forwards(k), ROUNDS * ITERS)) } };
      await p.close();
    }
    // Over the interleaved rows only (threads_N), each side at its best thread count.
    const best = (o) => Math.min(...Object.entries(o).filter(([k]) => k.startsWith('threads_')).map(([, r]) => r.median_ms));
    out.ratio_ours_over_ort_best = best(out.ours) / best(out.ort_web_wasm);
    out.note = 'median_ms/min_ms: forward + logits read, run back to back in the worker, interleaved with ORT Web runs (session.run) in the same Chromium; page_forward_median_ms: the same forward inside the page\'s own classifications; per_image_median_ms: everything the page does per image (JPEG decode, resize, forward, top-5)';
    // Fine-tune step time on the page's CPU path, batch 8: heads only, then everything.
    const ft = await context.newPage();
    await ready(ft, '?backend=cpu');
    out.finetune_engine = await ft.getByTestId('backend').textContent();
    await ft.getByTestId('finetune-tab').click();
    for (const cls of [0, 1]) {
      const files = [];
      for (let k = 0; k < 4; k++) files.push(await generate(ft, cls, k));
      await ft.getByTestId(`class-files-${cls}`).setInputFiles(files);
      await ft.locator('.ft-class').nth(cls).locator('.count').filter({ hasText: '4 images' }).waitFor({ timeout: 60_000 });
    }
    out.finetune_browser_cpu = {};
    // Heads only: started at once (the idle-time precompute has just begun), then the same run
    // again once every training crop has been through the frozen layers; then everything.
    const prepared = async () => ({ ready: Number(await ft.getByTestId('finetune-prepared').getAttribute('data-ready')), wanted: Number(await ft.getByTestId('finetune-prepared').getAttribute('data-wanted')) });
    for (const [name, mode, n] of [['heads_started_at_once', 'heads', Number(process.env.FT_STEPS || 12)], ['heads_features_ready', 'heads', Number(process.env.FT_STEPS || 12)], ['all', 'all', 3]]) {
      if (name === 'heads_features_ready') {
        await ft.waitForFunction(() => { const p = document.querySelector('[data-testid="finetune-prepared"]'); return p.dataset.wanted && p.dataset.ready === p.dataset.wanted; }, null, { timeout: 900_000 });
      }
      await ft.locator('#ft-train').selectOption(mode);
      await ft.getByTestId('finetune-steps').fill(String(n));
      // The previous run's log stays until this run's first step: wait for a new, finished one.
      const before = await ft.getByTestId('finetune-log').getAttribute('data-ms');
      const atStart = mode === 'heads' ? await prepared() : null;
      await ft.getByTestId('finetune-start').click();
      await ft.waitForFunction(([n, before]) => {
        const ms = document.querySelector('[data-testid="finetune-log"]').dataset.ms;
        return ms && ms !== before && JSON.parse(ms).length >= n && document.querySelector('[data-testid="finetune-stop"]').disabled;
      }, [n, before], { timeout: 900_000 });
      const ms = JSON.parse(await ft.getByTestId('finetune-log').getAttribute('data-ms'));
      const total = ms.reduce((a, b) => a + b, 0);
      out.finetune_browser_cpu[name] = { batch: 8, first_ms: ms[0], median_ms: median(ms), steps: ms.length, steps_per_s: 1000 / median(ms), run_steps_per_s: (1000 * ms.length) / total, crops_ready_at_start: atStart };
    }
  } finally { await close(); }
}

// What the page downloads up to its first result besides the weights, as served (gzip), per
// engine: the page (index.html, its stylesheet, manifest and service worker, every module the
// page and the worker import, followed from their import lines) plus that engine's build (and
// its thread helper).
function moduleGraph(entries) {
  const seen = new Set();
  const visit = (f) => {
    if (seen.has(f)) return;
    seen.add(f);
    const src = fs.readFileSync(path.join(root, f), 'utf8');
    for (const m of src.matchAll(/^\s*import\s[^'"]*['"](\.{1,2}\/[^'"]+)['"]/gm)) visit(path.join(path.dirname(f), m[1]));
  };
  entries.forEach(visit);
  return [...seen];
}
const page = ['index.html', 'www/style.css', 'manifest.webmanifest', 'sw.js', ...moduleGraph(['www/main.js', 'www/worker.js'])];
const gz = (f) => zlib.gzipSync(fs.readFileSync(path.join(root, f)), { level: 9 }).length;
const files = (dir) => fs.readdirSync(path.join(root, dir), { recursive: true }).map((f) => path.join(dir, f)).filter((f) => /\.(js|wasm)$/.test(f));
out.page_files = page;
out.download = {};
for (const engine of ['cpu', 'threads', 'threads-relaxed', 'webgpu']) {
  const own = files(`pkg/${engine}`);
  out.download[engine] = {
    wasm_raw: fs.statSync(path.join(root, `pkg/${engine}/googlenet_bg.wasm`)).size,
    wasm_gzip: gz(`pkg/${engine}/googlenet_bg.wasm`),
    everything_but_weights_gzip: [...page, ...own].reduce((a, f) => a + gz(f), 0),
  };
}
out.machine = `${(fs.readFileSync('/proc/cpuinfo', 'utf8').match(/model name\s*:\s*(.*)/) || [])[1]}, ${(await import('node:os')).cpus().length} cores`;
console.log(JSON.stringify(out, null, 1));
server.close();
