// Page wiring: input (drop, picker, paste, webcam, gallery), the model in its worker (through
// lib/protocol.js: every request answered or failed in bounded time), results and the explorer.
import { renderTop, renderAux } from './ui/results.js';
import { renderMap, renderDifferences, drawHeat } from './ui/explorer.js';
import { setupFinetune } from './ui/finetune.js';
import { setupExplain } from './ui/explain.js';
import { setupOffline } from './ui/offline.js';
import { setupPresenter } from './ui/presenter.js';
import { WorkerClient, Req, Event, Kind, RequestError, restartBudget } from './lib/protocol.js';
import { chooseEngine, cpuEngine, decide, describeAdapter, describeMeasurement, engineLabel, hasRelaxedSimd, measureKey, median } from './lib/backend.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
// Half-size (float16) weights by default; the server falls back to the float32 file.
const WEIGHTS_URL = new URL(params.get('weights') || 'weights/bvlc_googlenet.f16.safetensors', location.href).href;
const LABELS_URL = new URL('weights/synset_words.txt', location.href).href;
const MAX_BYTES = 50 * 1024 * 1024;
const FAULT = params.get('fault') || '';
// Test hook ?fault=worker-missing: the worker script cannot be loaded.
const WORKER_URL = new URL(FAULT === 'worker-missing' ? './no-such-worker.js' : './worker.js', import.meta.url);

const state = {
  requested: ['webgpu', 'cpu'].includes(params.get('backend')) ? params.get('backend') : 'auto',
  backend: null,
  report: null,
  settings: null,
  ready: false,
  /** An image dropped while the model loads: classified once it is ready. */
  waiting: null,
  lastImage: null,
  firstResultAt: null,
  blockCache: new Map(),
  budget: restartBudget(3),
  /** The highest worker generation already recovered from (one restart per dead worker). */
  recoveredGeneration: 0,
  /** Why the page runs on the CPU after WebGPU failed (kept over later restarts). */
  fallback: '',
  /** The engine choice of the last start (lib/backend.js). */
  choice: null,
  /** The race between the CPU engine and WebGPU, when auto asked for one. */
  measuring: null,
  /** The user has done something (a click, a key, a drop): an update then waits for a Reload. */
  touched: false,
};

/** ?threads=N: the CPU engine's thread count (benchmarks); default: every logical core. */
const THREADS = params.get('threads');
const MEASURED = 'googlenet-engine-race-v1';

/** WebGPU as the page sees it (asked once). */
let gpuPromise = null;
function gpuInfo() {
  gpuPromise ??= (async () => {
    const hasGpu = typeof navigator !== 'undefined' && !!navigator.gpu;
    if (!hasGpu) return { hasGpu, adapter: null };
    try { return { hasGpu, adapter: describeAdapter(await navigator.gpu.requestAdapter({ powerPreference: 'high-performance' })) }; }
    catch { return { hasGpu, adapter: null }; }
  })();
  return gpuPromise;
}

function remembered(key) {
  try { return JSON.parse(localStorage.getItem(MEASURED) || '{}')[key] || null; } catch { return null; }
}
function remember(key, record) {
  try {
    const all = JSON.parse(localStorage.getItem(MEASURED) || '{}');
    all[key] = { ...record, at: new Date().toISOString() };
    localStorage.setItem(MEASURED, JSON.stringify(all));
  } catch { /* no storage (private mode): measured again next visit */ }
}

async function chooseFor(requested) {
  const gpu = await gpuInfo();
  const isolated = Boolean(globalThis.crossOriginIsolated);
  const cores = navigator.hardwareConcurrency;
  // Test hook: `?relaxed=0` behaves as a browser without relaxed SIMD.
  const relaxed = params.get('relaxed') !== '0' && hasRelaxedSimd();
  const cpu = cpuEngine({ isolated, cores, threads: THREADS, relaxed });
  const measured = gpu.adapter ? remembered(measureKey(gpu.adapter.name, cpu)) : null;
  return { ...chooseEngine({ requested, ...gpu, isolated, cores, threads: THREADS, relaxed, measured }), adapter: gpu.adapter?.name || '' };
}

function setStatus(text) { $('status').textContent = text; }

function showError(message) {
  const e = $('error');
  e.textContent = message;
  e.hidden = !message;
}

const client = new WorkerClient(() => new Worker(WORKER_URL, { type: 'module' }), {
  onEvent: (m) => {
    if (m.type === Event.PROGRESS) showProgress(m);
    else if (m.type === Event.BACKEND) { state.backend = m.backend; state.label = m.label; showBackend(m); }
  },
  // The worker died while nothing was asked of it.
  onFailure: (err) => recover(err, null),
});

// `?bench=1`: bench/browser.mjs asks for per-stage times through the page's own worker.
if (params.get('bench') === '1') {
  globalThis.googlenetBench = {
    stageTimes: (iters) => client.request(Req.STAGE_TIMES, { iters }),
    // The last image classified `iters` times back to back, nothing drawn in between (as ORT
    // Web's bench page loops `session.run`): each run's forward time.
    async forwards(iters) {
      const ms = [];
      for (let i = 0; i < iters; i++) ms.push((await client.request(Req.CLASSIFY, { bytes: state.lastImage.slice().buffer })).ms_forward);
      return ms;
    },
  };
}

/**
 * (Re)start the model on `requested`; `reason` says why when the page chose for the user.
 * Resolves to whether the model is ready (on failure, `recover` has said what happened).
 */
async function boot(requested, reason = '') {
  // A new build took over in another tab: a worker started now would be the new build's code
  // under this page's old code. Reload instead (the page says so before).
  if (offline.stale()) { location.reload(); return false; }
  state.ready = false;
  // How many times the model was started (tests read it: no restart loops).
  document.body.dataset.boots = String(Number(document.body.dataset.boots || 0) + 1);
  state.blockCache.clear();
  setStatus('loading');
  try {
    // Fault hooks act on the first start only (a restarted model is meant to work).
    const fault = document.body.dataset.boots === '1' ? FAULT : '';
    const c = await chooseFor(requested);
    // After a WebGPU failure (`reason`, always with requested 'cpu') the page says why.
    const choice = reason ? { ...c, reason: `${reason}; ${c.cpu.why}`, fallback: true } : c;
    state.choice = choice;
    // A race cut short by this start (a switch) may run again on the next image.
    state.measuring = null;
    const bootAt = performance.now();
    const info = await client.start({
      engine: choice.engine, threads: choice.threads, cpu: choice.cpu, adapter: choice.adapter, reason: choice.reason,
      fallback: choice.fallback, weightsUrl: WEIGHTS_URL, labelsUrl: LABELS_URL, fault,
    });
    state.backend = info.backend;
    state.label = info.label;
    state.settings = info.settings;
    state.ready = true;
    // The start's timeline in page time (ms): bench/browser.mjs reports it beside the cold start.
    const ph = info.phases;
    $('timing').dataset.start = JSON.stringify({
      boot: Math.round(bootAt), worker: Math.round(ph.workerStart - performance.timeOrigin), engine: Math.round(ph.engine),
      weights: Math.round(ph.weights), load: Math.round(ph.load), ready: Math.round(performance.now()),
    });
    showBackend(info);
    showReport(info.report);
    $('weights-text').textContent += ` · ${info.report.variant}, ${info.report.num_classes} classes`;
    finetune.setSettings(info.settings);
    offline.modelReady({ engine: info.engine });
    setStatus('waiting for an image');
    const pending = state.waiting;
    state.waiting = null;
    if (pending) classify(pending);
    return true;
  } catch (e) {
    if (e.kind === Kind.RESTART) return false; // another start replaced this one
    await recover(e, null);
    // Never a stuck "loading": a model that did not start says so.
    if (!state.ready) setStatus('error');
    return state.ready;
  }
}

/**
 * A request failed. Input errors are shown; a failed GPU moves to the CPU (and redoes `retry`
 * once); a crash or a silent worker restarts it, on the backend it ran on, within a budget, and
 * without redoing the input that crashed it. Every request that failed with one dead worker
 * lands here; only the first restarts it. Returns true when `retry` was re-run.
 */
async function recover(err, retry) {
  if (!(err instanceof RequestError)) { showError(`Internal error in the page: ${err.message}`); return false; }
  if (err.kind === Kind.RESTART) return false;
  if (err.kind === Kind.INPUT || err.kind === Kind.INTERNAL) { showError(err.message); return false; }
  if (err.generation && err.generation <= state.recoveredGeneration) return false;
  state.recoveredGeneration = Math.max(state.recoveredGeneration, err.generation || 0);
  if (!state.budget.allow()) {
    showError(`The model stopped repeatedly (last: ${err.message}). Reload the page to try again.`);
    setStatus('error');
    return false;
  }
  // What the page showed belonged to the model that is gone.
  clearResults();
  state.lastImage = null;
  finetune.modelRestarted();
  const onGpu = state.backend === 'webgpu' || (state.backend === null && state.requested !== 'cpu');
  if (err.kind === Kind.DEVICE && onGpu) {
    state.fallback = `WebGPU failed (${err.message}); switched to the CPU automatically`;
    if (await boot('cpu', state.fallback) && retry) { retry(); return true; }
    return false;
  }
  const what = err.request === Req.CLASSIFY ? 'This image stopped the model' : 'The model stopped';
  // (When the restart fails too, its own failure has been reported.)
  if (await boot(state.fallback ? 'cpu' : state.requested, state.fallback || '')) {
    showError(`${what} (${err.message}); it was restarted and is ready again (a fine-tuned or loaded model is gone: the default weights are back).`);
  }
  return false;
}

function showProgress(m) {
  const bar = $('weights-progress');
  bar.max = m.total || 1;
  bar.value = m.loaded;
  $('weights-text').textContent = m.cached
    ? `${(m.loaded / 1e6).toFixed(1)} MB from the offline cache`
    : `${(m.loaded / 1e6).toFixed(1)}${m.total ? ` / ${(m.total / 1e6).toFixed(1)}` : ''} MB`;
}

function showBackend(info) {
  const badge = $('backend');
  badge.textContent = `${info.label} · ${info.adapter}`;
  badge.className = `badge ${info.backend}`;
  badge.dataset.backend = info.backend;
  badge.dataset.engine = info.engine;
  badge.dataset.threads = String(info.threads);
  $('backend-reason').textContent = info.fallback ? `Fallback: ${info.reason}` : info.reason;
  $('backend-reason').classList.toggle('warn', Boolean(info.fallback));
  $('backend-select').value = state.requested;
}

function showReport(report) {
  state.report = report;
  explain.setReport(report);
  renderDifferences($('differences'), report);
  renderMap($('network-map'), report.summary, loadBlock, state.settings);
  presenter.update();
}

function clearResults() {
  explain.clear();
  $('top5').replaceChildren();
  $('aux').replaceChildren();
  $('timing').textContent = '';
  $('overlay').classList.remove('shown');
}

/** Block `index`'s live view; `overlay`: also shown over the preview (where the block responds). */
async function loadBlock(index, { overlay = true } = {}) {
  if (!state.lastImage) throw new Error('Classify an image first to see this block\'s activations.');
  if (!state.blockCache.has(index)) {
    const after = client.request(Req.BLOCK, { index, k: 16 });
    const before = state.report.has_base ? client.request(Req.BLOCK, { index, k: 16, before: true }) : null;
    const both = Promise.all([after, before]).then(([a, b]) => ({ ...a, before: b }));
    both.catch((e) => {
      state.blockCache.delete(index);
      // A dead or lost model is recovered from like any other request's.
      if (e instanceof RequestError && ![Kind.INPUT, Kind.INTERNAL, Kind.RESTART].includes(e.kind)) recover(e, null);
    });
    state.blockCache.set(index, both);
  }
  const view = await state.blockCache.get(index);
  if (!overlay) return view;
  explain.overlayTaken();
  drawHeat($('overlay'), view.heatmap, view.h, view.w, null);
  $('overlay').dataset.kind = 'block';
  $('overlay').classList.add('shown');
  $('overlay').title = `${view.block}: where it responds`;
  return view;
}

async function drawPreview(bytes) {
  try {
    const bmp = await createImageBitmap(new Blob([bytes]), { imageOrientation: 'from-image' });
    const c = $('preview');
    const ctx = c.getContext('2d');
    // Same crop as the model: shorter side to 256, centre 224 (drawn at the canvas's size,
    // twice the model's, sharp on a projector in presenter mode).
    const n = c.width;
    const s = (256 / 224) * n / Math.min(bmp.width, bmp.height);
    const w = bmp.width * s, h = bmp.height * s;
    ctx.clearRect(0, 0, n, n);
    ctx.drawImage(bmp, (n - w) / 2, (n - h) / 2, w, h);
  } catch { /* the model reports what is wrong with the file */ }
}

async function classify(bytes) {
  showError('');
  if (!state.ready) {
    state.waiting = bytes;
    setStatus('loading the model; your image is classified as soon as it is ready');
    return;
  }
  setStatus('classifying');
  const run = async () => {
    try {
      const res = await client.request(Req.CLASSIFY, { bytes: bytes.slice().buffer });
      state.budget.succeeded();
      state.lastImage = bytes;
      state.blockCache.clear();
      renderTop($('top5'), res.top);
      renderAux($('aux'), res, state.report);
      // Before any block view is drawn over it (their heatmaps use the preview as the base).
      await drawPreview(bytes);
      $('overlay').classList.remove('shown');
      explain.setResult(res.top);
      state.firstResultAt ??= performance.now();
      const t = $('timing');
      t.dataset.warmMs = res.ms.toFixed(1);
      t.dataset.coldMs = state.firstResultAt.toFixed(0);
      t.dataset.wasmBytes = String(res.wasmBytes);
      t.dataset.forwardMs = res.ms_forward.toFixed(1);
      t.textContent = `${res.ms.toFixed(0)} ms for this image (forward ${res.ms_forward.toFixed(0)} ms, ${state.label}) · first result ${(state.firstResultAt / 1000).toFixed(1)} s after page load`;
      setStatus('ready');
      if (state.choice?.probe && !state.measuring) state.measuring = race(bytes);
      for (const card of document.querySelectorAll('.block.open .block-head')) {
        card.click(); card.click(); // refresh open blocks for the new image
      }
      presenter.update();
    } catch (e) {
      if (e.kind === Kind.RESTART) return; // the model restarted (backend switch): nothing to show
      // A stale answer must not sit beside an error.
      clearResults();
      state.lastImage = null;
      // The request failed (even if a restart made the model ready again).
      if (!(await recover(e, run))) setStatus('error');
    }
  };
  await run();
}

/**
 * auto, first visit on this adapter: time the CPU engine (warm) and WebGPU in a second worker on
 * the same image, remember the winner for this adapter, and move to WebGPU only if it won.
 * Runs after the first result, so the page answers first and measures after.
 */
async function race(bytes) {
  const choice = state.choice;
  if (offline.stale()) return; // (its worker would be another build's code)
  const cpuLabel = engineLabel(choice);
  const reason = $('backend-reason');
  const say = (text) => { reason.textContent = text; };
  try {
    // Two warm runs (the first result included the engine's warm-up).
    const cpu = [];
    for (let i = 0; i < 2; i++) cpu.push((await client.request(Req.CLASSIFY, { bytes: bytes.slice().buffer })).ms);
    const cpuMs = median(cpu);
    say(`${cpuLabel}: ${Math.round(cpuMs)} ms; measuring WebGPU (${choice.adapter}) on the same image…`);
    const probe = new WorkerClient(() => new Worker(WORKER_URL, { type: 'module' }), {});
    let gpuMs = null, note = '';
    try {
      const info = await probe.start({ engine: 'webgpu', threads: 1, cpu: null, adapter: choice.adapter, reason: 'measurement', weightsUrl: WEIGHTS_URL, labelsUrl: LABELS_URL });
      if (info.backend === 'webgpu') {
        await probe.request(Req.CLASSIFY, { bytes: bytes.slice().buffer }); // compiles the kernels
        const gpu = [];
        for (let i = 0; i < 2; i++) {
          gpu.push((await probe.request(Req.CLASSIFY, { bytes: bytes.slice().buffer })).ms);
          if (gpu[i] > 3 * cpuMs) break; // clearly slower: no need to wait for more
        }
        gpuMs = median(gpu);
      }
    } catch (e) {
      note = e.message;
    } finally {
      probe.fail('measurement finished', Kind.RESTART);
    }
    const record = decide({ cpuMs, gpuMs, cpuLabel, note });
    remember(measureKey(choice.adapter, choice.cpu), record);
    document.body.dataset.race = record.winner;
    if (state.choice !== choice) return; // the user switched engines meanwhile
    state.choice = { ...choice, probe: false };
    if (record.winner === 'webgpu' && state.requested === 'auto') {
      // Faster on this machine: start on WebGPU and show this image's answer from it.
      if (await boot('auto') && state.lastImage) classify(state.lastImage);
    } else {
      say(`${describeMeasurement(record)}; ${choice.cpu.why}`);
    }
  } catch (e) {
    if (e.kind !== Kind.RESTART) say(`${reason.textContent} (the WebGPU measurement failed: ${e.message})`);
  }
}

async function takeFile(file) {
  if (!file) return;
  if (file.size > MAX_BYTES) { showError(`${file.name} is ${(file.size / 1e6).toFixed(0)} MB; the limit is ${MAX_BYTES / 1e6} MB.`); return; }
  if (/\.(safetensors|pth|pt|bin|ckpt)$/i.test(file.name)) return loadOwnWeights(file);
  await classify(new Uint8Array(await file.arrayBuffer()));
}

async function loadOwnWeights(file) {
  showError('');
  if (!state.ready) { showError('The model is still loading; add your weights when it is ready.'); return; }
  const bytes = await file.arrayBuffer();
  const before = state.report;
  setStatus('loading weights');
  try {
    const { report } = await client.request(Req.LOAD_WEIGHTS, { bytes, name: file.name, variant: $('own-variant').value }, [bytes]);
    state.blockCache.clear();
    state.lastImage = null;
    clearResults();
    showReport(report);
    $('weights-text').textContent = `${file.name} · ${report.variant}, ${report.num_classes} classes`;
    setStatus('waiting for an image');
    finetune.modelChanged();
  } catch (e) {
    if (e.kind === Kind.INPUT || e.kind === Kind.INTERNAL) {
      showError(`${file.name} was not loaded: ${e.message}. Still using the previous model (${before.variant}, ${before.num_classes} classes).`);
      setStatus(state.lastImage ? 'ready' : 'waiting for an image');
    } else if (!(await recover(e, null)) && !state.ready) {
      setStatus('error');
    }
  }
}

function wireInput() {
  const zone = $('drop-zone');
  for (const ev of ['dragenter', 'dragover']) document.addEventListener(ev, (e) => { e.preventDefault(); zone.classList.add('hover'); });
  for (const ev of ['dragleave', 'drop']) document.addEventListener(ev, (e) => { e.preventDefault(); zone.classList.remove('hover'); });
  document.addEventListener('drop', (e) => takeFile(e.dataTransfer?.files?.[0]));
  $('file-input').addEventListener('change', (e) => { takeFile(e.target.files[0]); e.target.value = ''; });
  $('own-weights').addEventListener('change', (e) => { takeFile(e.target.files[0]); e.target.value = ''; });
  document.addEventListener('paste', (e) => {
    const item = [...(e.clipboardData?.items || [])].find((i) => i.kind === 'file');
    if (item) takeFile(item.getAsFile());
  });
  $('webcam-btn').addEventListener('click', startWebcam);
  $('snap-btn').addEventListener('click', snapWebcam);
  $('backend-select').addEventListener('change', (e) => {
    state.requested = e.target.value;
    const url = new URL(location.href);
    if (state.requested === 'auto') url.searchParams.delete('backend'); else url.searchParams.set('backend', state.requested);
    history.replaceState(null, '', url);
    clearResults();
    state.lastImage = null;
    state.fallback = '';
    finetune.modelRestarted();
    boot(state.requested);
  });
  $('large-type').addEventListener('change', (e) => document.body.classList.toggle('large', e.target.checked));
  if (params.get('large') === '1') { $('large-type').checked = true; document.body.classList.add('large'); }
}

async function startWebcam() {
  const video = $('webcam');
  try {
    video.srcObject = await navigator.mediaDevices.getUserMedia({ video: { facingMode: 'environment' } });
    video.hidden = false;
    $('snap-btn').hidden = false;
    await video.play();
  } catch (e) {
    showError(`The webcam is not available: ${e.message}`);
  }
}

async function snapWebcam() {
  const video = $('webcam');
  const c = new OffscreenCanvas(video.videoWidth, video.videoHeight);
  c.getContext('2d').drawImage(video, 0, 0);
  const blob = await c.convertToBlob({ type: 'image/png' });
  await classify(new Uint8Array(await blob.arrayBuffer()));
}

async function loadGallery() {
  try {
    const list = await fetch('www/samples/index.json').then((r) => (r.ok ? r.json() : []));
    $('gallery').replaceChildren(...list.map((name) => {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'sample';
      b.title = name;
      const img = document.createElement('img');
      img.src = `www/samples/${name}`;
      img.alt = name;
      b.append(img);
      b.addEventListener('click', async () => classify(new Uint8Array(await fetch(img.src).then((r) => r.arrayBuffer()))));
      return b;
    }));
  } catch { /* no gallery */ }
}

function wireTabs() {
  for (const tab of document.querySelectorAll('.tab')) {
    tab.addEventListener('click', () => {
      for (const t of document.querySelectorAll('.tab')) t.classList.toggle('active', t === tab);
      $('view-classify').hidden = tab.dataset.view !== 'classify';
      $('view-finetune').hidden = tab.dataset.view !== 'finetune';
    });
  }
}

wireInput();
wireTabs();
const explain = setupExplain({
  request: (type, payload) => client.request(type, payload),
  recover: (e) => recover(e, null),
  engine: () => state.label || 'this engine',
});
$('top5').addEventListener('click', (e) => {
  const li = e.target.closest('li[data-index]');
  if (li) explain.explainClass(Number(li.dataset.index));
});
for (const ev of ['pointerdown', 'keydown', 'drop', 'paste']) document.addEventListener(ev, () => { state.touched = true; }, { capture: true, once: true });
const offline = setupOffline({ params, weightsUrl: WEIGHTS_URL, touched: () => state.touched, $ });
const finetune = setupFinetune({
  request: (type, payload, transfer) => client.request(type, payload, transfer),
  recover: (e) => recover(e, null),
  ready: () => state.ready,
  lastImage: () => state.lastImage,
  onApplied: (report) => {
    showReport(report);
    $('weights-text').textContent = `fine-tuned: ${report.num_classes} classes (${report.variant})`;
    state.blockCache.clear();
    if (state.lastImage) classify(state.lastImage);
  },
});
const presenter = setupPresenter({
  $, params, classify, loadBlock,
  summary: () => state.report?.summary || null,
  hasImage: () => Boolean(state.lastImage),
});
loadGallery();
// (Not isolated on a host without COOP/COEP: the service worker may add them; the page then
// reloads once before starting the model.)
if (await offline.beforeBoot()) boot(state.requested);
