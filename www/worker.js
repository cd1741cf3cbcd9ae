// The Web Worker owns the wasm instance, the model and the fine-tune's data set: the page
// never blocks on inference. Requests are answered one at a time, in order, each with one
// reply (see lib/protocol.js); requests that arrive while the model loads wait for it.
// The worker loads one engine build (pkg/<engine>/, see lib/backend.js); WebGPU falls back to
// the CPU engine it is given, the threaded CPU engine to the one-thread build.
import { Req, Event, Kind, DEFAULTS, reply, replyError, replyTransfer } from './lib/protocol.js';
import { engineLabel } from './lib/backend.js';

const CACHE = 'googlenet-weights-v1';
/** The loaded engine build's module: Session, initThreadPool, engine(). */
let Session = null;
let session = null;
let wasm = null;
let backendInfo = null;
let labelsText = '';
let fault = '';
let faultUsed = false;
/** Set when the wasm instance trapped: nothing more can run in it. */
let dead = null;

const event = (msg) => self.postMessage({ event: true, ...msg });

/**
 * Download `url` with progress events, from the weights cache when it holds it. Bounded: no
 * byte for `stallMs` (before the headers or between chunks) ends it with an error that says so.
 */
async function fetchWithProgress(url, label, stallMs) {
  let cache = null;
  try { cache = await caches.open(CACHE); } catch { /* no Cache API (e.g. opaque origin) */ }
  const cached = cache && (await cache.match(url));
  if (cached) {
    const buf = new Uint8Array(await cached.arrayBuffer());
    event({ type: Event.PROGRESS, label, loaded: buf.length, total: buf.length, cached: true });
    return { bytes: buf, cached: true, cache };
  }
  const abort = new AbortController();
  let loaded = 0, total = 0;
  let timer = 0;
  const watch = () => {
    clearTimeout(timer);
    timer = setTimeout(() => abort.abort(), stallMs);
  };
  const mb = (n) => (n / 1e6).toFixed(1);
  const stalled = () => Object.assign(new Error(loaded
    ? `the download of ${url} stalled: no data for ${Math.round(stallMs / 1000)} s at ${mb(loaded)}${total ? ` of ${mb(total)}` : ''} MB (check the connection, then Retry)`
    : `the server at ${url} did not answer within ${Math.round(stallMs / 1000)} s (check the connection, then Retry)`), { kind: Kind.INPUT });
  watch();
  try {
    let res;
    try {
      res = await fetch(url, { signal: abort.signal });
    } catch (e) {
      if (abort.signal.aborted) throw stalled();
      // A TypeError with no detail ("Failed to fetch"): unreachable, offline, or refused by CORS.
      throw Object.assign(new Error(`the weights could not be downloaded from ${url} (${e.message || e}): the server is unreachable, the page is offline, or the server does not allow this page to read the file (CORS)`), { kind: Kind.INPUT });
    }
    if (!res.ok) throw Object.assign(new Error(`downloading ${url} failed: HTTP ${res.status}`), { kind: Kind.INPUT });
    total = Number(res.headers.get('content-length')) || 0;
    const reader = res.body.getReader();
    const chunks = [];
    let last = 0;
    for (;;) {
      let chunk;
      try {
        chunk = await reader.read();
      } catch (e) {
        if (abort.signal.aborted) throw stalled();
        throw Object.assign(new Error(`the download of ${url} broke off at ${mb(loaded)} MB (${e.message || e}); Retry`), { kind: Kind.INPUT });
      }
      const { done, value } = chunk;
      if (done) break;
      watch();
      chunks.push(value);
      loaded += value.length;
      if (loaded - last > 256 * 1024 || loaded === total) {
        last = loaded;
        event({ type: Event.PROGRESS, label, loaded, total, cached: false });
      }
    }
    if (total && loaded !== total) throw Object.assign(new Error(`the download of ${url} stopped at ${loaded} of ${total} bytes; Retry`), { kind: Kind.INPUT });
    const bytes = new Uint8Array(loaded);
    let off = 0;
    for (const c of chunks) { bytes.set(c, off); off += c.length; }
    event({ type: Event.PROGRESS, label, loaded, total: loaded, cached: false });
    return { bytes, cached: false, cache };
  } finally {
    clearTimeout(timer);
  }
}

/** Load an engine build; the threaded one also starts its worker threads. */
async function loadEngine(engine, threads) {
  const mod = await import(`../pkg/${engine}/googlenet.js`);
  const instance = await mod.default();
  if (mod.engine() !== engine) throw new Error(`pkg/${engine} holds the ${mod.engine()} engine (a stale build)`);
  if (engine.startsWith('threads')) {
    if (fault === 'threads-init') throw new Error('simulated failure (test hook ?fault=threads-init)');
    if (typeof SharedArrayBuffer === 'undefined' || !self.crossOriginIsolated) throw new Error('this worker cannot share memory (not cross-origin isolated)');
    await mod.initThreadPool(threads);
  }
  Session = mod.Session;
  wasm = instance;
}

/**
 * Start the engine the page chose (`m.engine`, `m.threads`); `m.cpu` is the CPU engine to fall
 * back to when WebGPU fails (none: the failure is the answer, as in the page's measurement).
 */
async function createSession(m) {
  let { engine, threads = 1, reason = '' } = m;
  let fallback = Boolean(m.fallback);
  if (engine === 'webgpu') {
    try {
      if (fault === 'webgpu-init') throw new Error('simulated WebGPU initialisation failure (test hook ?fault=webgpu-init)');
      await loadEngine('webgpu');
      session = await Session.create('webgpu');
    } catch (e) {
      if (!m.cpu) throw Object.assign(new Error(`WebGPU failed to start: ${e.message || e}`), { kind: Kind.DEVICE });
      reason = `WebGPU failed to start (${e.message || e}); fell back to the CPU; ${m.cpu.why}`;
      fallback = true;
      ({ engine, threads } = m.cpu);
      session = null;
    }
  }
  if (engine.startsWith('threads')) {
    try {
      await loadEngine(engine, threads);
      session = await Session.create('cpu');
    } catch (e) {
      reason += `; the threaded CPU engine failed to start (${e.message || e}), so it runs on one thread`;
      fallback = true;
      engine = 'cpu';
      threads = 1;
      session = null;
    }
  }
  if (!session) {
    await loadEngine('cpu');
    session = await Session.create('cpu');
  }
  backendInfo = {
    backend: engine === 'webgpu' ? 'webgpu' : 'cpu',
    engine,
    threads,
    label: engineLabel({ engine, threads }),
    adapter: engine === 'webgpu' ? (m.adapter || 'WebGPU adapter') : `WebAssembly (burn-flex, ${engine === 'threads-relaxed' ? 'relaxed SIMD' : 'SIMD128'})`,
    reason,
    fallback,
  };
  event({ type: Event.BACKEND, ...backendInfo });
}

/**
 * The class names: from the weights cache, else downloaded and kept there (small; the page then
 * has them offline, next to the weights). None is fine: the model shows class numbers.
 */
async function loadLabels(url, stallMs) {
  if (!url) return '';
  const cache = await caches.open(CACHE).catch(() => null);
  const hit = cache && (await cache.match(url).catch(() => null));
  if (hit) return hit.text();
  // Bounded like the weights: a stalled or unreachable labels file means class numbers, not a hang.
  const signal = typeof AbortSignal.timeout === 'function' ? AbortSignal.timeout(stallMs) : undefined;
  const res = await fetch(url, { signal }).catch(() => null);
  if (!res?.ok) return '';
  const text = await res.text().catch(() => null);
  if (text === null) return '';
  await cache?.put(url, new Response(text, { headers: { 'content-type': 'text/plain; charset=utf-8' } })).catch(() => {});
  return text;
}

/** Marks a cached weights file that is not the default (`?weights=`): at most one such is kept. */
const CUSTOM = 'x-googlenet-weights';

/**
 * The weights the page asked for (`url`), from the cache or the network. The default weights
 * (`defaultUrl`) stay kept for offline use whatever else is loaded; beside them the cache keeps
 * at most one other file (`?weights=`, the last one used). An older default (say the float32
 * file after the default became float16) is dropped when the default is stored.
 */
async function loadWeights(url, defaultUrl, labelsUrl, stallMs) {
  const t0 = performance.now();
  labelsText = await loadLabels(labelsUrl, stallMs);
  const isDefault = url === defaultUrl;
  let got = await fetchWithProgress(url, 'weights', stallMs);
  const t1 = performance.now();
  let report;
  try {
    report = session.load_weights(got.bytes, '', labelsText);
  } catch (e) {
    if (!got.cached) throw e;
    // A bad cached copy: drop it and download again once.
    await got.cache.delete(url);
    got = await fetchWithProgress(url, 'weights', stallMs);
    report = session.load_weights(got.bytes, '', labelsText);
  }
  if (!got.cached && got.cache) {
    const headers = { 'content-type': 'application/octet-stream', ...(isDefault ? {} : { [CUSTOM]: 'custom' }) };
    await got.cache.put(url, new Response(got.bytes, { headers })).catch(() => {});
    // The default, at most one other, and the labels: the cache never grows by a whole model
    // per file ever used.
    for (const req of await got.cache.keys().catch(() => [])) {
      if (req.url === url || req.url === defaultUrl || req.url === labelsUrl) continue;
      const custom = (await got.cache.match(req).catch(() => null))?.headers.get(CUSTOM) === 'custom';
      // Storing the default drops what is not marked custom (an older default); storing another
      // file drops the other custom one, and any older default.
      if (!isDefault || !custom) await got.cache.delete(req).catch(() => {});
    }
  }
  return { report, cached: got.cached, readMs: t1 - t0, loadMs: performance.now() - t1 };
}

/**
 * An image for the model: a file the app decodes itself goes as bytes (the same decoder as the
 * CLI); any other format the browser can decode (AVIF, ICO, HEIC on Safari, …) goes as the
 * browser's pixels, EXIF orientation applied. The size limit is checked before drawing.
 */
async function imageInput(buffer) {
  const bytes = new Uint8Array(buffer);
  if (bytes.length === 0 || Session.known_format(bytes)) return { bytes };
  let bmp;
  try {
    bmp = await createImageBitmap(new Blob([bytes]), { imageOrientation: 'from-image', colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
  } catch {
    return { bytes }; // not an image to the browser either: the model says what it expected
  }
  const { width, height } = bmp;
  // Too large: refused by the model (with its message) before the browser draws it.
  if (width * height > Session.max_pixels()) { bmp.close(); return { rgba: new Uint8Array(0), width, height }; }
  const g = new OffscreenCanvas(width, height).getContext('2d', { willReadFrequently: true });
  g.drawImage(bmp, 0, 0);
  bmp.close();
  return { rgba: new Uint8Array(g.getImageData(0, 0, width, height).data.buffer), width, height };
}

const handlers = {
  async [Req.INIT](m) {
    fault = m.fault || '';
    const t0 = performance.now();
    await createSession(m);
    const t1 = performance.now();
    const w = await loadWeights(m.weightsUrl, m.defaultWeightsUrl || m.weightsUrl, m.labelsUrl, m.stallMs ?? DEFAULTS.stallMs);
    // Where a start's time went (bench/browser.mjs reports it): the worker's clock origin is its
    // own start, so `workerStart` places it on the page's timeline.
    const phases = { workerStart: performance.timeOrigin, engine: t1 - t0, weights: w.readMs, load: w.loadMs, total: performance.now() - t0 };
    return { ...backendInfo, report: w.report, weightsCached: w.cached, initMs: phases.total, phases, settings: session.finetune_settings() };
  },
  // Validated whole in Rust before it replaces anything: on error the model in use stays.
  [Req.LOAD_WEIGHTS]: (m) => session.load_weights(new Uint8Array(m.bytes), m.variant || '', labelsText),
  async [Req.CLASSIFY](m) {
    if (fault === 'webgpu-lost' && backendInfo.backend === 'webgpu' && !faultUsed) {
      faultUsed = true;
      throw Object.assign(new Error('simulated WebGPU device loss (test hook ?fault=webgpu-lost)'), { kind: Kind.DEVICE });
    }
    if (fault === 'trap' && !faultUsed) {
      faultUsed = true;
      session.simulate_panic(); // a real panic: the instance traps
    }
    const t0 = performance.now();
    const res = await session.classify(await imageInput(m.bytes), DEFAULTS.top);
    return { ...res, ms: performance.now() - t0, wasmBytes: wasm.memory.buffer.byteLength };
  },
  async [Req.BLOCK](m) {
    const v = await session.block_view(m.index, m.k ?? DEFAULTS.blockK, Boolean(m.before));
    return { ...v, heatmap: Float32Array.from(v.heatmap), branches: v.branches.map((b) => ({ ...b, maps: Float32Array.from(b.maps) })) };
  },
  async [Req.EXPLAIN](m) {
    const t0 = performance.now();
    const e = await session.explain(m.class, m.block, m.head || 'main');
    return { ...e, ms: performance.now() - t0 };
  },
  [Req.STAGE_TIMES]: (m) => session.stage_times(m.iters ?? DEFAULTS.stageIters),
  [Req.FT_ADD_CLASS]: (m) => session.ft_add_class(m.name),
  [Req.FT_RENAME]: (m) => session.ft_rename(m.id, m.name),
  [Req.FT_REMOVE_CLASS]: (m) => session.ft_remove_class(m.id),
  [Req.FT_ADD_IMAGE]: async (m) => session.ft_add_image(m.id, await imageInput(m.bytes)),
  [Req.FT_PRECOMPUTE]: (m) => session.ft_precompute(m.views, m.n),
  [Req.FT_START]: (m) => session.ft_start(m.config),
  [Req.FT_STEP]: () => session.ft_step(),
  [Req.FT_PREDICT]: async (m) => session.ft_predict(await imageInput(m.bytes)),
  [Req.FT_APPLY]: () => session.ft_apply(),
  async [Req.EXPORT]() {
    const bytes = await session.export_weights();
    return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes.buffer : bytes.slice().buffer;
  },
};

let ready = null;
let queue = Promise.resolve();

async function handle(m) {
  const h = handlers[m.type];
  if (!h) throw Object.assign(new Error(`unknown request ${m.type}`), { kind: Kind.INTERNAL });
  if (dead) throw Object.assign(new Error(`the model crashed earlier (${dead}); it restarts automatically`), { kind: Kind.CRASH });
  if (m.type === Req.INIT) {
    ready = h(m);
    return ready;
  }
  if (!ready) throw Object.assign(new Error('the model has not been started'), { kind: Kind.INTERNAL });
  try {
    await ready;
  } catch (e) {
    throw Object.assign(new Error(`the model failed to load: ${e.message || e}`), { kind: e.kind || Kind.INTERNAL, code: 'model.not_loaded' });
  }
  return h(m);
}

self.onmessage = ({ data: m }) => {
  // One request at a time: a session is never re-entered while a step or a read awaits.
  queue = queue.then(async () => {
    // The page's clock for this request starts now, not while it waited in the queue.
    self.postMessage({ event: true, type: Event.STARTED, rid: m.rid });
    try {
      const value = await handle(m);
      self.postMessage(reply(m.rid, value), replyTransfer(m.type, value));
    } catch (e) {
      const r = replyError(m.rid, e);
      if (r.error.kind === Kind.CRASH) dead = dead || r.error.message;
      self.postMessage(r);
    }
  });
};
