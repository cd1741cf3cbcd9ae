// Page wiring: input (drop, picker, paste, webcam, gallery), the model in its worker (through
// lib/protocol.js: every request answered or failed in bounded time), results and the explorer.
import { renderTop, renderAux } from './ui/results.js';
import { renderMap, renderDifferences, drawHeat } from './ui/explorer.js';
import { setupFinetune } from './ui/finetune.js';
import { setupExplain } from './ui/explain.js';
import { setupOffline } from './ui/offline.js';
import { setupPresenter } from './ui/presenter.js';
import { WorkerClient, Req, Event, Kind, RequestError, restartBudget, triage, DEFAULTS } from './lib/protocol.js';
import { Generations, Stale } from './lib/generation.js';
import { route, SNIFF_BYTES } from './lib/sniff.js';
import { chooseEngine, cpuEngine, decide, describeAdapter, describeMeasurement, engineLabel, hasRelaxedSimd, measureKey, median } from './lib/backend.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
// Half-size (float16) weights by default; the server falls back to the float32 file. They are
// the ones kept offline; `?weights=` loads others for this visit (not kept: the page says so).
const DEFAULT_WEIGHTS_URL = new URL('weights/bvlc_googlenet.f16.safetensors', location.href).href;
const LABELS_URL = new URL('weights/synset_words.txt', location.href).href;
const MAX_BYTES = 50 * 1024 * 1024;
const FAULT = params.get('fault') || '';
// Test hook ?fault=worker-missing: the worker script cannot be loaded.
const WORKER_URL = new URL(FAULT === 'worker-missing' ? './no-such-worker.js' : './worker.js', import.meta.url);

/** Every photo the user gives (pick, drop, paste, camera, gallery, presenter step) is a generation. */
const photos = new Generations();

const state = {
  /** The weights this start loads: the default, or `?weights=` until the user goes back to the default. */
  weightsUrl: params.get('weights') ? new URL(params.get('weights'), location.href).href : DEFAULT_WEIGHTS_URL,
  /** Why the last start failed (null: it did not): the page offers Retry and the default weights. */
  startError: null,
  /** Starts under way (a photo given meanwhile waits for the newest). */
  booting: 0,
  /** The user's own model (loaded weights, or an applied fine-tune) as safetensors bytes: put back after a restart. */
  userModel: null,
  requested: ['webgpu', 'cpu'].includes(params.get('backend')) ? params.get('backend') : 'auto',
  backend: null,
  report: null,
  settings: null,
  ready: false,
  /** A photo given while the model loads: {bytes, gen}, classified once it is ready. */
  waiting: null,
  /** The photo on screen (its bytes: block views, races and restarts use them). */
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

/** Test hook `?stallms=MS`: how long a download may go without a byte (default 20 s). */
const STALL_MS = Math.max(500, Number(params.get('stallms')) || DEFAULTS.stallMs);

/**
 * (Re)start the model on `requested`; `reason` says why when the page chose for the user.
 * Resolves to whether the model is ready (on failure, the page says what happened and offers
 * Retry and the default weights). The user's own model (loaded or fine-tuned) is put back.
 */
async function boot(requested, reason = '') {
  // A new build took over in another tab: a worker started now would be the new build's code
  // under this page's old code. Reload instead (the page says so before).
  if (offline.stale()) { location.reload(); return false; }
  state.ready = false;
  state.booting += 1;
  state.startError = null;
  showStartFailure(null);
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
      fallback: choice.fallback, weightsUrl: state.weightsUrl, defaultWeightsUrl: DEFAULT_WEIGHTS_URL, labelsUrl: LABELS_URL,
      stallMs: STALL_MS, fault,
    });
    state.backend = info.backend;
    state.label = info.label;
    state.settings = info.settings;
    // The user's model comes back before anything is classified with the default one.
    const restored = state.userModel ? await restoreUserModel() : null;
    state.ready = true;
    // The start's timeline in page time (ms): bench/browser.mjs reports it beside the cold start.
    const ph = info.phases;
    $('timing').dataset.start = JSON.stringify({
      boot: Math.round(bootAt), worker: Math.round(ph.workerStart - performance.timeOrigin), engine: Math.round(ph.engine),
      weights: Math.round(ph.weights), load: Math.round(ph.load), ready: Math.round(performance.now()),
    });
    showBackend(info);
    showReport(restored || info.report);
    if (restored) $('weights-text').textContent = `${state.userModel.name} · ${restored.variant}, ${classCount(restored.num_classes)}`;
    else $('weights-text').textContent += ` · ${info.report.variant}, ${classCount(info.report.num_classes)}`;
    finetune.setSettings(info.settings);
    offline.modelReady({ engine: info.engine, custom: state.weightsUrl !== DEFAULT_WEIGHTS_URL });
    setStatus('waiting for an image');
    const pending = state.waiting;
    state.waiting = null;
    if (pending && photos.current(pending.gen)) classify(pending.bytes, pending.gen);
    return true;
  } catch (e) {
    if (triage(e) === 'cancelled') return false; // another start replaced this one
    if (e.request === Req.INIT && triage(e) === 'show') {
      // The model did not load (unreachable, refused, stalled, bad weights): say so and offer a way on.
      state.startError = e;
      showStartFailure(e);
      setStatus('error');
      return false;
    }
    await recover(e, null);
    // Never a stuck "loading": a model that did not start says so.
    if (!state.ready) setStatus('error');
    return state.ready;
  } finally {
    state.booting -= 1;
  }
}

const classCount = (n) => `${n.toLocaleString()} ${n === 1 ? 'class' : 'classes'}`;

/** The user's model back in a fresh worker; null (and a note) when it cannot be. */
async function restoreUserModel() {
  const m = state.userModel;
  try {
    const bytes = m.bytes.slice().buffer;
    const report = await client.request(Req.LOAD_WEIGHTS, { bytes, name: m.name, variant: m.variant });
    finetune.modelChanged();
    return report;
  } catch (e) {
    if (e.kind === Kind.RESTART) throw e;
    state.userModel = null;
    showError(`${m.name} could not be put back after the restart (${e.message}); the default weights are in use.`);
    return null;
  }
}

/** The start failed (null: clear): what happened, and Retry / Use the default weights. */
function showStartFailure(err) {
  const box = $('start-failed');
  box.hidden = !err;
  if (!err) return;
  const custom = state.weightsUrl !== DEFAULT_WEIGHTS_URL;
  const waiting = state.waiting ? ' Your image was not classified yet: it is, as soon as a model is ready.' : '';
  $('start-failed-text').textContent = `The model did not load: ${err.message}.${waiting}`;
  $('start-default').hidden = !custom;
}

/** Retry the start that failed (the same weights). */
function retryStart() {
  boot(state.fallback ? 'cpu' : state.requested, state.fallback || '');
}

/** Leave `?weights=` (or a loaded model that failed): the default weights, kept offline. */
function useDefaultWeights() {
  state.weightsUrl = DEFAULT_WEIGHTS_URL;
  state.userModel = null;
  const url = new URL(location.href);
  url.searchParams.delete('weights');
  history.replaceState(null, '', url);
  retryStart();
}

/**
 * A request failed. Input errors are shown; a failed GPU moves to the CPU (and redoes `retry`
 * once); a crash or a silent worker restarts it, on the backend it ran on, within a budget, and
 * without redoing the input that crashed it. Every request that failed with one dead worker
 * lands here; only the first restarts it. Returns true when `retry` was re-run.
 */
async function recover(err, retry) {
  if (!(err instanceof RequestError) && !err?.stale) { showError(`Internal error in the page: ${err.message}`); return false; }
  const whose = triage(err);
  if (whose === 'cancelled') return false;
  if (whose === 'show') { showError(err.message); return false; }
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
  photos.clear();
  finetune.modelRestarted({ restored: Boolean(state.userModel) });
  const onGpu = state.backend === 'webgpu' || (state.backend === null && state.requested !== 'cpu');
  if (err.kind === Kind.DEVICE && onGpu) {
    state.fallback = `WebGPU failed (${err.message}); switched to the CPU automatically`;
    if (await boot('cpu', state.fallback) && retry) { retry(); return true; }
    return false;
  }
  const what = err.request === Req.CLASSIFY ? 'This image stopped the model' : 'The model stopped';
  const mine = state.userModel?.name;
  // (When the restart fails too, its own failure has been reported.)
  if (await boot(state.fallback ? 'cpu' : state.requested, state.fallback || '')) {
    const back = state.userModel ? `your model (${mine}) was put back` : mine ? 'the default weights are back' : 'it runs the default weights';
    showError(`${what} (${err.message}); it was restarted and is ready again: ${back}.`);
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
  delete $('timing').dataset.gen;
  $('overlay').classList.remove('shown');
}

/**
 * Block `index`'s live view of the photo on screen; `overlay`: also shown over the preview
 * (where the block responds). A view asked for while a newer photo is on its way, or answered
 * after one replaced it, is dropped (`Stale`): the result of the newer photo reopens the views.
 */
async function loadBlock(index, { overlay = true } = {}) {
  if (!state.lastImage) throw new Error('Classify an image first to see this block\'s activations.');
  const gen = photos.shown;
  if (!photos.settled()) throw new Stale('block view');
  if (!state.blockCache.has(index)) {
    const after = client.request(Req.BLOCK, { index });
    const before = state.report.has_base ? client.request(Req.BLOCK, { index, before: true }) : null;
    const both = Promise.all([after, before]).then(([a, b]) => ({ ...a, before: b }));
    both.catch((e) => {
      state.blockCache.delete(index);
      // A dead or lost model is recovered from like any other request's.
      if (triage(e) === 'recover') recover(e, null);
    });
    state.blockCache.set(index, both);
  }
  const view = await state.blockCache.get(index);
  if (photos.shown !== gen || !photos.settled()) throw new Stale('block view');
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

/**
 * A new photo (`read` gives its bytes: a file read, a fetch, a camera frame): it takes a
 * generation at once, so a slower read of an earlier photo finishing later is dropped.
 */
async function takePhoto(read, what = 'The image', gen = photos.take()) {
  let bytes;
  try {
    bytes = await read();
  } catch (e) {
    if (photos.current(gen)) { showError(`${what} could not be read: ${e.message || e}`); setStatus(state.ready ? 'error' : $('status').textContent); }
    return;
  }
  if (!photos.current(gen)) return;
  await classify(new Uint8Array(bytes), gen);
}

/** Classify `bytes` as photo `gen` (a new generation unless given); only the newest photo is shown. */
async function classify(bytes, gen = photos.take()) {
  if (!photos.current(gen)) return;
  showError('');
  if (!state.ready) {
    state.waiting = { bytes, gen };
    if (state.startError && !state.booting) {
      // No model is coming by itself: the failure stays on screen, with what happens to the image.
      showStartFailure(state.startError);
      setStatus('error');
    } else {
      setStatus('loading the model; your image is classified as soon as it is ready');
    }
    return;
  }
  setStatus('classifying');
  const run = async () => {
    try {
      const res = await photos.guard(gen, client.request(Req.CLASSIFY, { bytes: bytes.slice().buffer }), 'result');
      state.budget.succeeded();
      // Decoded before anything is drawn, so the preview and the result land together.
      const bmp = await decodePreview(bytes);
      if (!photos.current(gen)) { bmp?.close(); return; }
      state.lastImage = bytes;
      state.blockCache.clear();
      photos.show(gen);
      paintPreview(bmp);
      $('overlay').classList.remove('shown');
      renderTop($('top5'), res.top);
      renderAux($('aux'), res, state.report);
      explain.setResult(res.top);
      state.firstResultAt ??= performance.now();
      const t = $('timing');
      t.dataset.gen = String(gen);
      t.dataset.warmMs = res.ms.toFixed(1);
      t.dataset.coldMs = state.firstResultAt.toFixed(0);
      t.dataset.wasmBytes = String(res.wasmBytes);
      t.dataset.forwardMs = res.ms_forward.toFixed(1);
      t.textContent = `${res.ms.toFixed(0)} ms for this image (forward ${res.ms_forward.toFixed(0)} ms, ${state.label}) · first result ${(state.firstResultAt / 1000).toFixed(1)} s after page load`;
      $('preview').dataset.gen = String(gen);
      setStatus('ready');
      if (state.choice?.probe && !state.measuring) state.measuring = race(bytes);
      for (const card of document.querySelectorAll('.block.open .block-head')) {
        card.click(); card.click(); // refresh open blocks for the new image
      }
      presenter.update();
    } catch (e) {
      if (e instanceof Stale) return; // a newer photo replaced this one: its answer is not shown
      if (e.kind === Kind.RESTART) {
        // The model restarted (a backend switch): the newest photo waits for the new one.
        if (photos.current(gen)) {
          if (state.ready) { run(); return; }
          state.waiting = { bytes, gen };
          setStatus('loading the model; your image is classified as soon as it is ready');
        }
        return;
      }
      // A stale answer must not sit beside an error.
      clearResults();
      state.lastImage = null;
      photos.clear();
      // The request failed (even if a restart made the model ready again).
      if (!(await recover(e, run))) setStatus('error');
    }
  };
  await run();
}

/** Classify the photo on screen again (a new model or engine), unless a newer one is on its way. */
function reclassifyShown() {
  if (state.lastImage && photos.settled()) classify(state.lastImage);
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
      const info = await probe.start({ engine: 'webgpu', threads: 1, cpu: null, adapter: choice.adapter, reason: 'measurement', weightsUrl: state.weightsUrl, defaultWeightsUrl: DEFAULT_WEIGHTS_URL, labelsUrl: LABELS_URL, stallMs: STALL_MS });
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
      // Faster on this machine: start on WebGPU and show the photo on screen's answer from it
      // (a newer photo on its way waits for the new engine instead).
      if (state.lastImage && photos.settled() && !state.waiting) state.waiting = { bytes: state.lastImage, gen: photos.take() };
      await boot('auto');
    } else {
      say(`${describeMeasurement(record)}; ${choice.cpu.why}`);
    }
  } catch (e) {
    if (e.kind !== Kind.RESTART) say(`${reason.textContent} (the WebGPU measurement failed: ${e.message})`);
  }
}

/** A picked, dropped or pasted file: weights go to the loader, anything else is classified. */
async function takeFile(file) {
  if (!file) return;
  // Taken before anything is read: a file given later always wins, whatever finishes first.
  const gen = photos.take();
  if (file.size > MAX_BYTES) {
    showError(`${file.name} is ${(file.size / 1e6).toFixed(1)} MB; the limit is ${MAX_BYTES / 1e6} MB.`);
    return;
  }
  // What it is comes from its first bytes, not its name.
  const head = new Uint8Array(await file.slice(0, SNIFF_BYTES).arrayBuffer().catch(() => new ArrayBuffer(0)));
  if (!photos.current(gen)) return;
  if (route(head, file.name) === 'weights') return loadOwnWeights(file);
  await takePhoto(() => file.arrayBuffer(), file.name, gen);
}

async function loadOwnWeights(file) {
  showError('');
  if (!state.ready) { showError('The model is still loading; add your weights when it is ready.'); return; }
  const bytes = await file.arrayBuffer();
  const kept = new Uint8Array(bytes.slice(0));
  const variant = $('own-variant').value;
  const before = state.report;
  setStatus('loading weights');
  try {
    const report = await client.request(Req.LOAD_WEIGHTS, { bytes, name: file.name, variant });
    state.userModel = { bytes: kept, name: file.name, variant, fineTuned: false };
    state.blockCache.clear();
    state.lastImage = null;
    photos.clear();
    clearResults();
    showReport(report);
    $('weights-text').textContent = `${file.name} · ${report.variant}, ${classCount(report.num_classes)}`;
    setStatus('waiting for an image');
    finetune.modelChanged();
  } catch (e) {
    if (triage(e) === 'show') {
      showError(`${file.name} was not loaded: ${e.message}. Still using the previous model (${before.variant}, ${classCount(before.num_classes)}).`);
      setStatus(state.lastImage ? 'ready' : 'waiting for an image');
    } else if (!(await recover(e, null)) && !state.ready) {
      setStatus('error');
    }
  }
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
  $('start-retry').addEventListener('click', retryStart);
  $('start-default').addEventListener('click', useDefaultWeights);
  $('backend-select').addEventListener('change', (e) => {
    state.requested = e.target.value;
    const url = new URL(location.href);
    if (state.requested === 'auto') url.searchParams.delete('backend'); else url.searchParams.set('backend', state.requested);
    history.replaceState(null, '', url);
    // The photo on screen is classified again on the new engine (a photo still on its way
    // waits for it by itself); what is shown until then belonged to the old one.
    if (state.lastImage && photos.settled() && !state.waiting) state.waiting = { bytes: state.lastImage, gen: photos.take() };
    clearResults();
    state.lastImage = null;
    photos.clear();
    state.fallback = '';
    finetune.modelRestarted({ restored: Boolean(state.userModel) });
    boot(state.requested);
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
  await takePhoto(async () => (await c.convertToBlob({ type: 'image/png' })).arrayBuffer(), 'The camera frame');
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
      b.addEventListener('click', () => takePhoto(() => fetch(img.src).then((r) => {
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

wireInput();
wireTabs();
const explain = setupExplain({
  request: (type, payload) => client.request(type, payload),
  recover: (e) => recover(e, null),
  engine: () => state.label || 'this engine',
});
$('top5').addEventListener('click', (e) => {
  const li = e.target.closest('li[data-index]');
  // (Rows of a photo being replaced are not explained: the newer photo's answer is on its way.)
  if (li && photos.settled()) explain.explainClass(Number(li.dataset.index));
});
for (const ev of ['pointerdown', 'keydown', 'drop', 'paste']) document.addEventListener(ev, () => { state.touched = true; }, { capture: true, once: true });
const offline = setupOffline({ params, weightsUrl: DEFAULT_WEIGHTS_URL, touched: () => state.touched, $ });
const finetune = setupFinetune({
  request: (type, payload, transfer) => client.request(type, payload, transfer),
  recover: (e) => recover(e, null),
  ready: () => state.ready,
  lastImage: () => state.lastImage,
  /** The fine-tuned model classifies now; its bytes are kept in the page (put back after a restart, exported from here). */
  onApplied: async (report) => {
    showReport(report);
    $('weights-text').textContent = `fine-tuned: ${classCount(report.num_classes)} (${report.variant})`;
    state.blockCache.clear();
    reclassifyShown();
    const bytes = await client.request(Req.EXPORT);
    state.userModel = { bytes: new Uint8Array(bytes), name: 'your fine-tuned model', variant: '', fineTuned: true };
    return state.userModel.bytes;
  },
  keptModel: () => (state.userModel?.fineTuned ? state.userModel.bytes : null),
});
const presenter = setupPresenter({
  $, params, takePhoto, loadBlock,
  summary: () => state.report?.summary || null,
  hasImage: () => Boolean(state.lastImage),
});
loadGallery();
// (Not isolated on a host without COOP/COEP: the service worker may add them; the page then
// reloads once before starting the model.)
if (await offline.beforeBoot()) boot(state.requested);
