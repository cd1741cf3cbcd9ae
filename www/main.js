// Page wiring: input (drop, picker, paste, webcam, gallery), the worker (backend choice and
// automatic fallback), results and the explorer.
import { renderTop, renderAux } from './ui/results.js';
import { renderMap, renderDifferences, drawHeat } from './ui/explorer.js';
import { setupFinetune } from './ui/finetune.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const WEIGHTS_URL = new URL(params.get('weights') || 'weights/bvlc_googlenet.safetensors', location.href).href;
const LABELS_URL = new URL('weights/synset_words.txt', location.href).href;
const MAX_BYTES = 50 * 1024 * 1024;

const state = {
  worker: null,
  requested: ['webgpu', 'cpu'].includes(params.get('backend')) ? params.get('backend') : 'auto',
  backend: null,
  report: null,
  ready: false,
  pending: new Map(),
  nextId: 1,
  lastImage: null,
  firstResultAt: null,
  blockCache: new Map(),
  cropBitmap: null,
};

function setStatus(text) { $('status').textContent = text; }

function showError(message) {
  const e = $('error');
  e.textContent = message;
  e.hidden = !message;
}

function request(msg, transfer = []) {
  const id = state.nextId++;
  return new Promise((resolve, reject) => {
    state.pending.set(id, { resolve, reject, msg });
    state.worker.postMessage({ ...msg, id }, transfer);
  });
}

function startWorker(requested, reason = '') {
  if (state.worker) state.worker.terminate();
  for (const p of state.pending.values()) p.reject(new Error('restarting the model'));
  state.pending.clear();
  state.ready = false;
  state.blockCache.clear();
  const w = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
  state.worker = w;
  w.onmessage = ({ data }) => onWorkerMessage(data);
  w.onerror = (e) => onFatal(`the worker crashed: ${e.message || 'unknown error'}`);
  setStatus('loading');
  w.postMessage({ type: 'init', backend: requested, reason, weightsUrl: WEIGHTS_URL, labelsUrl: LABELS_URL, fault: params.get('fault') || '' });
}

function onFatal(message) {
  if (state.backend === 'webgpu' || state.requested !== 'cpu') {
    // WebGPU broke (device lost, out of memory, a trap in wasm): restart on the CPU and redo the last image.
    const reason = `WebGPU failed (${message}); switched to the CPU automatically`;
    state.backend = 'cpu';
    startWorker('cpu', reason);
  } else {
    showError(`The model stopped: ${message}. Reload the page to try again.`);
    setStatus('error');
  }
}

function showBackend(info) {
  const badge = $('backend');
  badge.textContent = `${info.backend === 'webgpu' ? 'webgpu' : 'cpu'} · ${info.adapter || ''}`;
  badge.className = `badge ${info.backend}`;
  badge.dataset.backend = info.backend;
  $('backend-reason').textContent = info.fallback ? `Fallback: ${info.reason}` : info.reason;
  $('backend-reason').classList.toggle('warn', Boolean(info.fallback));
  $('backend-select').value = state.requested;
}

function onWorkerMessage(m) {
  const p = m.id ? state.pending.get(m.id) : null;
  switch (m.type) {
    case 'progress': {
      const bar = $('weights-progress');
      bar.max = m.total || 1;
      bar.value = m.loaded;
      $('weights-text').textContent = m.cached ? `${(m.loaded / 1e6).toFixed(1)} MB from the offline cache` : `${(m.loaded / 1e6).toFixed(1)}${m.total ? ` / ${(m.total / 1e6).toFixed(1)}` : ''} MB`;
      break;
    }
    case 'backend':
      state.backend = m.backend;
      showBackend(m);
      break;
    case 'ready': {
      state.backend = m.backend;
      state.report = m.report;
      state.ready = true;
      showBackend(m);
      $('weights-text').textContent += ` · ${m.report.variant}, ${m.report.num_classes} classes${m.custom ? ` (${m.custom})` : ''}`;
      renderDifferences($('differences'), m.report);
      renderMap($('network-map'), m.report.summary, loadBlock);
      setStatus('waiting for an image');
      if (state.current) classify(state.current);
      break;
    }
    case 'result': case 'block': case 'ok':
      if (p) { state.pending.delete(m.id); p.resolve(m); }
      break;
    case 'error':
      if (p) { state.pending.delete(m.id); p.reject(new Error(m.message)); }
      else { showError(m.message); setStatus('error'); }
      break;
    case 'fatal':
      if (p) state.pending.delete(m.id);
      onFatal(m.message);
      break;
  }
}

async function loadBlock(index) {
  if (!state.lastImage) throw new Error('Classify an image first to see this block\'s activations.');
  if (!state.blockCache.has(index)) {
    const after = request({ type: 'block', index, k: 16 }).then((m) => m.view);
    const before = state.report.has_base ? request({ type: 'block', index, k: 16, before: true }).then((m) => m.view) : null;
    state.blockCache.set(index, Promise.all([after, before]).then(([a, b]) => { a.before = b; return a; }));
  }
  const view = await state.blockCache.get(index);
  view.energyAbs = view.energy;
  drawHeat($('overlay'), view.heatmap, view.h, view.w, null);
  $('overlay').classList.add('shown');
  $('overlay').title = `${view.block}: where it responds`;
  return view;
}

async function drawPreview(bytes) {
  try {
    const bmp = await createImageBitmap(new Blob([bytes]), { imageOrientation: 'from-image' });
    const c = $('preview');
    const ctx = c.getContext('2d');
    // Same crop as the model: shorter side to 256, centre 224.
    const s = 256 / Math.min(bmp.width, bmp.height);
    const w = bmp.width * s, h = bmp.height * s;
    ctx.clearRect(0, 0, 224, 224);
    ctx.drawImage(bmp, (224 - w) / 2, (224 - h) / 2, w, h);
    $('overlay').classList.remove('shown');
  } catch { /* the model will report what is wrong with the file */ }
}

async function classify(bytes) {
  state.current = bytes;
  if (!state.ready) { setStatus('loading'); return; }
  showError('');
  setStatus('classifying');
  try {
    const res = await request({ type: 'classify', bytes: bytes.slice().buffer });
    state.lastImage = bytes;
    state.blockCache.clear();
    renderTop($('top5'), res.top);
    renderAux($('aux'), res, state.report);
    drawPreview(bytes);
    const cold = state.firstResultAt ?? performance.now();
    state.firstResultAt = cold;
    const t = $('timing');
    t.dataset.warmMs = res.ms.toFixed(1);
    t.dataset.coldMs = cold.toFixed(0);
    t.dataset.wasmBytes = String(res.wasmBytes);
    t.dataset.forwardMs = res.ms_forward.toFixed(1);
    t.textContent = `${res.ms.toFixed(0)} ms for this image (forward ${res.ms_forward.toFixed(0)} ms on ${state.backend}) · first result ${(cold / 1000).toFixed(1)} s after page load`;
    setStatus('ready');
    for (const card of document.querySelectorAll('.block.open .block-head')) {
      card.click(); card.click(); // refresh open blocks for the new image
    }
  } catch (e) {
    if (/restarting/.test(e.message)) return;
    state.current = state.lastImage;
    showError(e.message.replace(/^Error: /, ''));
    setStatus(state.report ? 'ready' : 'error');
    if (!$('top5').children.length) setStatus('error');
  }
}

async function takeFile(file) {
  if (!file) return;
  if (file.size > MAX_BYTES) { showError(`${file.name} is ${(file.size / 1e6).toFixed(0)} MB; the limit is ${MAX_BYTES / 1e6} MB.`); return; }
  if (file.name.endsWith('.safetensors') || file.name.endsWith('.pth')) { return loadOwnWeights(file); }
  const bytes = new Uint8Array(await file.arrayBuffer());
  await classify(bytes);
}

async function loadOwnWeights(file) {
  if (!state.ready) return;
  const bytes = await file.arrayBuffer();
  state.ready = false;
  setStatus('loading');
  state.worker.postMessage({ type: 'weights', bytes, name: file.name, variant: $('own-variant').value }, [bytes]);
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
    startWorker(state.requested);
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

function showReport(report, note = '') {
  state.report = report;
  renderDifferences($('differences'), report);
  renderMap($('network-map'), report.summary, loadBlock);
  if (note) $('weights-text').textContent = note;
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
setupFinetune({
  request,
  lastImage: () => state.lastImage,
  onApplied: (report) => {
    showReport(report, `fine-tuned: ${report.num_classes} classes (${report.summary.variant})`);
    state.blockCache.clear();
    if (state.lastImage) classify(state.lastImage);
  },
});
loadGallery();
startWorker(state.requested);
