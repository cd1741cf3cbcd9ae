// Page wiring: input (drop, picker, paste, webcam, gallery), what the page shows, and the views.
// The model's lifecycle (starts, recovery, photo generations, the engine race) is app/model.js;
// the page <-> worker protocol is lib/protocol.js.
import { renderTop, renderAux } from './ui/results.js';
import { renderMap, renderDifferences, drawHeat } from './ui/explorer.js';
import { setupFinetune } from './ui/finetune.js';
import { setupExplain } from './ui/explain.js';
import { setupOffline } from './ui/offline.js';
import { setupPresenter } from './ui/presenter.js';
import { createModel, classCount } from './app/model.js';
import { WorkerClient, Req, Event, DEFAULTS } from './lib/protocol.js';
import { route, SNIFF_BYTES } from './lib/sniff.js';
import { chooseEngine, cpuEngine, describeAdapter, hasRelaxedSimd, measureKey } from './lib/backend.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
// Half-size (float16) weights by default; the server falls back to the float32 file. They are
// always kept offline; `?weights=` loads others, kept beside them (one such file at a time).
const DEFAULT_WEIGHTS_URL = new URL('weights/bvlc_googlenet.f16.safetensors', location.href).href;
const LABELS_URL = new URL('weights/synset_words.txt', location.href).href;
const MAX_BYTES = 50 * 1024 * 1024;
const FAULT = params.get('fault') || '';
// Test hook ?fault=worker-missing: the worker script cannot be loaded.
const WORKER_URL = new URL(FAULT === 'worker-missing' ? './no-such-worker.js' : './worker.js', import.meta.url);

/** The user has done something (a click, a key, a drop): an update then waits for a Reload. */
let touched = false;

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

const makeWorker = () => new Worker(WORKER_URL, { type: 'module' });
const client = new WorkerClient(makeWorker, {
  onEvent: (m) => {
    if (m.type === Event.PROGRESS) showProgress(m);
    else if (m.type === Event.BACKEND) { model.state.backend = m.backend; model.state.label = m.label; showBackend(m); }
  },
  // The worker died while nothing was asked of it.
  onFailure: (err) => model.recover(err, null),
});

// `?bench=1`: bench/browser.mjs asks for per-stage times through the page's own worker.
if (params.get('bench') === '1') {
  globalThis.googlenetBench = {
    stageTimes: (iters) => client.request(Req.STAGE_TIMES, { iters }),
    // The last image classified `iters` times back to back, nothing drawn in between (as ORT
    // Web's bench page loops `session.run`): each run's forward time.
    async forwards(iters) {
      const ms = [];
      for (let i = 0; i < iters; i++) ms.push((await client.request(Req.CLASSIFY, { bytes: model.state.lastImage.slice().buffer })).ms_forward);
      return ms;
    },
  };
}

/** Test hook `?stallms=MS`: how long a download may go without a byte (default 20 s). */
const STALL_MS = Math.max(500, Number(params.get('stallms')) || DEFAULTS.stallMs);

/** The start failed (null: clear): what happened, and Retry / Use the default weights. */
function showStartFailure(err, { custom = false, waiting = false } = {}) {
  const box = $('start-failed');
  box.hidden = !err;
  if (!err) return;
  const pending = waiting ? ' Your image was not classified yet: it is, as soon as a model is ready.' : '';
  $('start-failed-text').textContent = `The model did not load: ${err.message}.${pending}`;
  $('start-default').hidden = !custom;
}

/** What the model's lifecycle shows (app/model.js). */
const ui = {
  now: () => performance.now(),
  status: setStatus,
  error: showError,
  startFailure: showStartFailure,
  stale: () => offline.stale(),
  reload: () => location.reload(),
  booted: (n) => { document.body.dataset.boots = String(n); },
  timeline(bootAt, ph) {
    // The start's timeline in page time (ms): bench/browser.mjs reports it beside the cold start.
    $('timing').dataset.start = JSON.stringify({
      boot: Math.round(bootAt), worker: Math.round(ph.workerStart - performance.timeOrigin), engine: Math.round(ph.engine),
      weights: Math.round(ph.weights), load: Math.round(ph.load), ready: Math.round(performance.now()),
    });
  },
  backend: (info) => showBackend(info),
  report: (report) => showReport(report),
  weightsLoaded(report, name) {
    const what = `${report.variant}, ${classCount(report.num_classes)}`;
    if (name) $('weights-text').textContent = `${name} · ${what}`;
    else $('weights-text').textContent += ` · ${what}`;
  },
  settings: (s) => finetune.setSettings(s),
  offlineReady: (o) => offline.modelReady(o),
  modelRestarted: (o) => finetune.modelRestarted(o),
  modelChanged: () => finetune.modelChanged(),
  clear: () => clearResults(),
  decode: decodePreview,
  result: showResult,
  reason: (text) => { $('backend-reason').textContent = text; },
  reasonText: () => $('backend-reason').textContent,
  raced: (winner) => { document.body.dataset.race = winner; },
};

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
  $('backend-select').value = model.state.requested;
}

function showReport(report) {
  explain.setReport(report);
  renderDifferences($('differences'), report);
  renderMap($('network-map'), report.summary, loadBlock, model.state.settings);
  presenter.update();
}

function clearResults() {
  explain.clear();
  $('top5').replaceChildren();
  $('aux').replaceChildren();
  $('timing').textContent = '';
  delete $('timing').dataset.gen;
  $('overlay').classList.remove('shown');
}

/** Block `index`'s live view (app/model.js); `overlay`: also shown over the preview (where the block responds). */
async function loadBlock(index, { overlay = true } = {}) {
  const view = await model.blockView(index);
  if (!overlay) return view;
  explain.overlayTaken();
  drawHeat($('overlay'), view.heatmap, view.h, view.w, null);
  $('overlay').dataset.kind = 'block';
  $('overlay').classList.add('shown');
  $('overlay').title = `${view.block}: where it responds`;
  return view;
}

/** The photo decoded for the preview (null when the browser cannot decode it: the model says why). */
async function decodePreview(bytes) {
  try {
    return await createImageBitmap(new Blob([bytes]), { imageOrientation: 'from-image' });
  } catch {
    return null;
  }
}

/** Paint a decoded photo (synchronous: it lands in the same frame as its result). */
function paintPreview(bmp) {
  const c = $('preview');
  const ctx = c.getContext('2d');
  const n = c.width;
  ctx.clearRect(0, 0, n, n);
  if (!bmp) return;
  // Same crop as the model: shorter side to 256, centre 224 (drawn at the canvas's size,
  // twice the model's, sharp on a projector in presenter mode).
  const s = (256 / 224) * n / Math.min(bmp.width, bmp.height);
  const w = bmp.width * s, h = bmp.height * s;
  ctx.drawImage(bmp, (n - w) / 2, (n - h) / 2, w, h);
  bmp.close();
}

/** A photo's answer, on screen all at once: the preview, the top-5, the aux heads, Why? and the timing. */
function showResult({ res, bmp, gen, label, firstResultAt }) {
  paintPreview(bmp);
  $('preview').dataset.gen = String(gen);
  $('overlay').classList.remove('shown');
  renderTop($('top5'), res.top);
  renderAux($('aux'), res, model.state.report);
  explain.setResult(res.top);
  const t = $('timing');
  t.dataset.gen = String(gen);
  t.dataset.warmMs = res.ms.toFixed(1);
  t.dataset.coldMs = firstResultAt.toFixed(0);
  t.dataset.wasmBytes = String(res.wasmBytes);
  t.dataset.forwardMs = res.ms_forward.toFixed(1);
  t.textContent = `${res.ms.toFixed(0)} ms for this image (forward ${res.ms_forward.toFixed(0)} ms, ${label}) · first result ${(firstResultAt / 1000).toFixed(1)} s after page load`;
  for (const card of document.querySelectorAll('.block.open .block-head')) {
    card.click(); card.click(); // refresh open blocks for the new image
  }
  presenter.update();
}

/** A picked, dropped or pasted file: weights go to the loader, anything else is classified. */
async function takeFile(file) {
  if (!file) return;
  // Taken before anything is read: a file given later always wins, whatever finishes first.
  const gen = model.photos.take();
  if (file.size > MAX_BYTES) {
    showError(`${file.name} is ${(file.size / 1e6).toFixed(1)} MB; the limit is ${MAX_BYTES / 1e6} MB.`);
    return;
  }
  // What it is comes from its first bytes, not its name.
  const head = new Uint8Array(await file.slice(0, SNIFF_BYTES).arrayBuffer().catch(() => new ArrayBuffer(0)));
  if (!model.photos.current(gen)) return;
  if (route(head, file.name) === 'weights') return model.loadOwnWeights(await file.arrayBuffer(), file.name, $('own-variant').value);
  await model.takePhoto(() => file.arrayBuffer(), file.name, gen);
}

/** Several files dropped or pasted at once (no folder): the first is classified, and the note says how to step through all. */
function takeFiles(files) {
  const list = [...(files || [])];
  note(list.length > 1
    ? `${list.length} files were dropped; this shows the first (${list[0].name}). To step through all of them, open presenter mode (Present ▶) and drop them there, or drop a folder: space then shows the next.`
    : '');
  return takeFile(list[0]);
}

function note(text) {
  $('note').textContent = text;
  $('note').hidden = !text;
}

function wireInput() {
  const zone = $('drop-zone');
  for (const ev of ['dragenter', 'dragover']) document.addEventListener(ev, (e) => { e.preventDefault(); zone.classList.add('hover'); });
  for (const ev of ['dragleave', 'drop']) document.addEventListener(ev, (e) => { e.preventDefault(); zone.classList.remove('hover'); });
  document.addEventListener('drop', (e) => takeFiles(e.dataTransfer?.files));
  $('file-input').addEventListener('change', (e) => { note(''); takeFile(e.target.files[0]); e.target.value = ''; });
  $('own-weights').addEventListener('change', (e) => { note(''); takeFile(e.target.files[0]); e.target.value = ''; });
  document.addEventListener('paste', (e) => {
    const item = [...(e.clipboardData?.items || [])].find((i) => i.kind === 'file');
    if (item) { note(''); takeFile(item.getAsFile()); }
  });
  $('webcam-btn').addEventListener('click', startWebcam);
  $('snap-btn').addEventListener('click', snapWebcam);
  $('start-retry').addEventListener('click', () => model.retry());
  $('start-default').addEventListener('click', () => {
    const url = new URL(location.href);
    url.searchParams.delete('weights');
    history.replaceState(null, '', url);
    model.useDefaultWeights();
  });
  $('backend-select').addEventListener('change', (e) => {
    const requested = e.target.value;
    const url = new URL(location.href);
    if (requested === 'auto') url.searchParams.delete('backend'); else url.searchParams.set('backend', requested);
    history.replaceState(null, '', url);
    model.switchEngine(requested);
  });
  $('large-type').addEventListener('change', (e) => document.body.classList.toggle('large', e.target.checked));
  if (params.get('large') === '1') { $('large-type').checked = true; document.body.classList.add('large'); }
  // A fine-tune that was not exported is lost on leaving: the browser asks first.
  window.addEventListener('beforeunload', (e) => {
    if (!finetune.unsaved()) return;
    e.preventDefault();
    e.returnValue = '';
  });
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
  await model.takePhoto(async () => (await c.convertToBlob({ type: 'image/png' })).arrayBuffer(), 'The camera frame');
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
      b.addEventListener('click', () => model.takePhoto(() => fetch(img.src).then((r) => {
        if (!r.ok) throw new Error(`HTTP ${r.status}`);
        return r.arrayBuffer();
      }), name));
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

const model = createModel({
  client,
  makeProbe: () => new WorkerClient(makeWorker, {}),
  choose: chooseFor,
  remember,
  config: {
    weightsUrl: params.get('weights') ? new URL(params.get('weights'), location.href).href : DEFAULT_WEIGHTS_URL,
    defaultWeightsUrl: DEFAULT_WEIGHTS_URL,
    labelsUrl: LABELS_URL,
    stallMs: STALL_MS,
    fault: FAULT,
    requested: ['webgpu', 'cpu'].includes(params.get('backend')) ? params.get('backend') : 'auto',
  },
  ui,
});
wireInput();
wireTabs();
const explain = setupExplain({
  request: (type, payload) => client.request(type, payload),
  recover: (e) => model.recover(e, null),
  engine: () => model.state.label || 'this engine',
});
$('top5').addEventListener('click', (e) => {
  const li = e.target.closest('li[data-index]');
  // (Rows of a photo being replaced are not explained: the newer photo's answer is on its way.)
  if (li && model.photos.settled()) explain.explainClass(Number(li.dataset.index));
});
for (const ev of ['pointerdown', 'keydown', 'drop', 'paste']) document.addEventListener(ev, () => { touched = true; }, { capture: true, once: true });
const offline = setupOffline({ params, weightsUrl: DEFAULT_WEIGHTS_URL, touched: () => touched, $ });
const finetune = setupFinetune({
  request: (type, payload, transfer) => client.request(type, payload, transfer),
  recover: (e) => model.recover(e, null),
  ready: () => model.state.ready,
  lastImage: () => model.state.lastImage,
  onApplied: async (report) => {
    const bytes = await model.applied(report);
    $('weights-text').textContent = `fine-tuned: ${classCount(report.num_classes)} (${report.variant})`;
    return bytes;
  },
  keptModel: () => model.keptModel(),
});
const presenter = setupPresenter({
  $, params, takePhoto: (read, what) => model.takePhoto(read, what), loadBlock,
  summary: () => model.state.report?.summary || null,
  hasImage: () => Boolean(model.state.lastImage),
});
loadGallery();
// (Not isolated on a host without COOP/COEP: the service worker may add them; the page then
// reloads once before starting the model.)
if (await offline.beforeBoot()) model.boot(model.state.requested);
