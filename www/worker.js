// The Web Worker owns the wasm instance and the model: the page never blocks on inference.
import init, { Session } from '../pkg/googlenet.js';
import { chooseBackend, describeAdapter } from './lib/backend.js';

const CACHE = 'googlenet-weights-v1';
let session = null;
let wasm = null;
let backendInfo = null;
let fault = '';
let faultUsed = false;

const post = (msg, transfer = []) => self.postMessage(msg, transfer);

async function fetchWithProgress(url, label) {
  let cache = null;
  try { cache = await caches.open(CACHE); } catch { /* no Cache API (e.g. opaque origin) */ }
  const cached = cache && (await cache.match(url));
  if (cached) {
    const buf = new Uint8Array(await cached.arrayBuffer());
    post({ type: 'progress', label, loaded: buf.length, total: buf.length, cached: true });
    return { bytes: buf, cached: true, cache };
  }
  const res = await fetch(url);
  if (!res.ok) throw new Error(`downloading ${url} failed: HTTP ${res.status}`);
  const total = Number(res.headers.get('content-length')) || 0;
  const reader = res.body.getReader();
  const chunks = [];
  let loaded = 0, last = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    loaded += value.length;
    if (loaded - last > 256 * 1024 || loaded === total) {
      last = loaded;
      post({ type: 'progress', label, loaded, total, cached: false });
    }
  }
  if (total && loaded !== total) throw new Error(`download of ${url} stopped at ${loaded} of ${total} bytes`);
  const bytes = new Uint8Array(loaded);
  let off = 0;
  for (const c of chunks) { bytes.set(c, off); off += c.length; }
  post({ type: 'progress', label, loaded, total: loaded, cached: false });
  return { bytes, cached: false, cache };
}

async function pickBackend(requested) {
  const hasGpu = typeof navigator !== 'undefined' && 'gpu' in navigator && !!navigator.gpu;
  let adapter = null;
  if (hasGpu && requested !== 'cpu') {
    try { adapter = describeAdapter(await navigator.gpu.requestAdapter({ powerPreference: 'high-performance' })); }
    catch { adapter = null; }
  }
  return { ...chooseBackend({ requested, hasGpu, adapter }), adapter };
}

async function createSession(requested, forcedReason) {
  const choice = await pickBackend(requested);
  let reason = forcedReason || choice.reason;
  let backend = choice.backend;
  if (backend === 'webgpu') {
    try {
      if (fault === 'webgpu-init') throw new Error('simulated WebGPU initialisation failure (test hook ?fault=webgpu-init)');
      session = await Session.create('webgpu');
    } catch (e) {
      reason = `WebGPU failed to start (${e.message || e}); fell back to the CPU`;
      backend = 'cpu';
      session = null;
    }
  }
  if (!session) session = await Session.create('cpu');
  backendInfo = { backend, adapter: backend === 'webgpu' ? choice.adapter?.name : 'WebAssembly (burn-flex, SIMD128)', reason, fallback: backend !== choice.backend || (requested !== 'cpu' && backend === 'cpu') };
  return backendInfo;
}

async function loadWeights(url, labelsUrl) {
  const t0 = performance.now();
  const labels = labelsUrl ? await fetch(labelsUrl).then((r) => (r.ok ? r.text() : '')).catch(() => '') : '';
  let got = await fetchWithProgress(url, 'weights');
  let report;
  try {
    report = JSON.parse(session.load_weights(got.bytes, '', labels));
  } catch (e) {
    if (!got.cached) throw e;
    // A bad cached copy: drop it and download again once.
    await got.cache.delete(url);
    got = await fetchWithProgress(url, 'weights');
    report = JSON.parse(session.load_weights(got.bytes, '', labels));
  }
  if (!got.cached && got.cache) {
    await got.cache.put(url, new Response(got.bytes, { headers: { 'content-type': 'application/octet-stream' } })).catch(() => {});
  }
  return { report, cached: got.cached, ms: performance.now() - t0, labels };
}

let labelsText = '';

self.onmessage = async ({ data: msg }) => {
  try {
    switch (msg.type) {
      case 'init': {
        fault = msg.fault || '';
        const t0 = performance.now();
        wasm = await init();
        const info = await createSession(msg.backend, msg.reason);
        post({ type: 'backend', ...info });
        const w = await loadWeights(msg.weightsUrl, msg.labelsUrl);
        labelsText = w.labels;
        post({ type: 'ready', ...info, report: w.report, weightsCached: w.cached, initMs: performance.now() - t0 });
        break;
      }
      case 'weights': {
        const report = JSON.parse(session.load_weights(new Uint8Array(msg.bytes), msg.variant || '', labelsText));
        post({ type: 'ready', ...backendInfo, report, weightsCached: false, initMs: 0, custom: msg.name });
        break;
      }
      case 'classify': {
        if (backendInfo.backend === 'webgpu' && fault === 'webgpu-lost' && !faultUsed) {
          faultUsed = true;
          post({ type: 'fatal', id: msg.id, message: 'simulated WebGPU device loss (test hook ?fault=webgpu-lost)' });
          return;
        }
        const t0 = performance.now();
        const res = JSON.parse(await session.classify(new Uint8Array(msg.bytes), 5));
        post({ type: 'result', id: msg.id, ...res, ms: performance.now() - t0, wasmBytes: wasm.memory.buffer.byteLength });
        break;
      }
      case 'block': {
        const v = await session.block_view(msg.index, msg.k || 12, Boolean(msg.before));
        const transfer = [v.heatmap.buffer, ...v.branches.map((b) => b.maps.buffer)];
        post({ type: 'block', id: msg.id, view: v }, transfer);
        break;
      }
      case 'ft-add':
        session.finetune_add(new Uint8Array(msg.bytes), msg.label);
        post({ type: 'ok', id: msg.id });
        break;
      case 'ft-start':
        session.finetune_start(msg.labels, msg.config);
        post({ type: 'ok', id: msg.id });
        break;
      case 'ft-step':
        post({ type: 'ok', id: msg.id, ...JSON.parse(await session.finetune_step()) });
        break;
      case 'ft-predict':
        post({ type: 'ok', id: msg.id, ...JSON.parse(await session.finetune_predict(new Uint8Array(msg.bytes))) });
        break;
      case 'ft-apply':
        post({ type: 'ok', id: msg.id, report: JSON.parse(session.finetune_apply()) });
        break;
      case 'export': {
        const bytes = await session.export_weights();
        post({ type: 'ok', id: msg.id, bytes: bytes.buffer }, [bytes.buffer]);
        break;
      }
      default:
        throw new Error(`unknown message ${msg.type}`);
    }
  } catch (e) {
    const message = String(e?.message || e);
    // Bad input is the user's to fix; anything else on WebGPU means the device is unusable.
    const userError = /cannot use this image|invalid weights file|cannot load this file|unknown variant|no activations|fine-tune|too many|training step failed|prediction failed|labels|config|no model/.test(message);
    if (!userError && backendInfo?.backend === 'webgpu') {
      post({ type: 'fatal', id: msg.id, message });
    } else {
      post({ type: 'error', id: msg.id, request: msg.type, message });
    }
  }
};
