// The page ↔ worker protocol, in one place: the request types, the reply shape, the error
// kinds, and a client that gives every request an answer or an error within a bounded time.
// Pure (no DOM), tested with `node --test`.

// ---- Shapes (JSDoc: the one description of what crosses between the page and the worker) ----
/**
 * @typedef {{engine: string, threads: number}} CpuEngine
 * @typedef {object} InitRequest
 * @property {'cpu'|'threads'|'threads-relaxed'|'webgpu'} engine  the build to load (lib/backend.js)
 * @property {number} threads
 * @property {CpuEngine|null} cpu  the CPU engine to fall back to when WebGPU fails (null: none)
 * @property {string} adapter  the WebGPU adapter's name ('' on the CPU)
 * @property {string} reason  why this engine (shown in the badge)
 * @property {boolean} [fallback]
 * @property {string} weightsUrl  the weights this start loads
 * @property {string} defaultWeightsUrl  the default weights: always kept offline (and at most one other file)
 * @property {string} labelsUrl
 * @property {number} [stallMs]  a download with no byte for this long fails (default DEFAULTS.stallMs)
 * @property {string} [fault]  a test hook (DEVELOPERS.md)
 *
 * @typedef {object} LoadReport  the loaded model (Rust `LoadReport`): variant, num_classes, labels, summary, has_aux, has_base, …
 * @typedef {object} EngineInfo
 * @property {'cpu'|'webgpu'} backend
 * @property {string} engine
 * @property {number} threads
 * @property {string} label
 * @property {string} adapter
 * @property {string} reason
 * @property {boolean} fallback
 * @typedef {EngineInfo & {report: LoadReport, weightsCached: boolean, initMs: number,
 *   phases: {workerStart: number, engine: number, weights: number, load: number, total: number}, settings: object}} InitReply
 *
 * @typedef {{index: number, label: string, prob: number}} Prediction
 * @typedef {{top: Prediction[], aux1: Prediction[]|null, aux2: Prediction[]|null, ms: number, ms_forward: number,
 *   ms_preprocess: number, wasmBytes: number}} ClassifyReply
 * @typedef {{block: string, h: number, w: number, heatmap: Float32Array,
 *   branches: {name: string, maps: Float32Array}[]}} BlockReply  (Rust `BlockView`; maps and heatmap transferred)
 * @typedef {{class: number, label: string, layer: string, head: string, score: number, grid: number[][], ms: number}} ExplainReply
 */

/**
 * Requests the page sends as `{rid, type, ...payload}`; each gets exactly one reply with the
 * same `rid`: `{rid, ok: true, value}` (the value's shape is given here) or `{rid, ok: false,
 * error: {message, kind, code?}}`.
 */
export const Req = Object.freeze({
  INIT: 'init',                 // InitRequest → InitReply
  LOAD_WEIGHTS: 'load-weights', // {bytes: ArrayBuffer, name, variant} → LoadReport (bytes transferred)
  CLASSIFY: 'classify',         // {bytes: ArrayBuffer} → ClassifyReply (bytes transferred)
  BLOCK: 'block',               // {index, k?, before?} → BlockReply (of the last image classified)
  EXPLAIN: 'explain',           // {class, block, head} → ExplainReply (Grad-CAM on the last image)
  FT_ADD_CLASS: 'ft-add-class', // {name} → id
  FT_RENAME: 'ft-rename',       // {id, name} → undefined
  FT_REMOVE_CLASS: 'ft-remove-class', // {id} → undefined
  FT_ADD_IMAGE: 'ft-add-image', // {id, bytes: ArrayBuffer} → image count
  FT_PRECOMPUTE: 'ft-precompute', // {views, n} → {ready, wanted} (heads-only features computed ahead, while idle)
  FT_START: 'ft-start',         // {config} → undefined
  FT_STEP: 'ft-step',           // → StepReport
  FT_PREDICT: 'ft-predict',     // {bytes} → {main, aux1, aux2}
  FT_APPLY: 'ft-apply',         // → LoadReport (the fine-tuned model classifies now)
  EXPORT: 'export',             // → ArrayBuffer (safetensors; transferred)
  STAGE_TIMES: 'stage-times',   // {iters?} → [{stage, ms}] (the benchmark's per-stage times on the last image)
});

/** Defaults of optional request fields, in one place (the page and the worker both read them). */
export const DEFAULTS = Object.freeze({
  /** Strongest channels per branch in a block view. */
  blockK: 16,
  /** Predictions per classification. */
  top: 5,
  /** Benchmark iterations per stage. */
  stageIters: 10,
  /** A download with no byte for this long fails (ms). */
  stallMs: 20_000,
});

/** What a request's payload hands over (transfers instead of copies), per request type. */
export function requestTransfer(type, payload) {
  // (Not the data-set edits: the client keeps their bytes to replay them after a restart.)
  const t = [Req.LOAD_WEIGHTS, Req.CLASSIFY, Req.FT_PREDICT].includes(type) && payload?.bytes instanceof ArrayBuffer;
  return t ? [payload.bytes] : [];
}

/** What a reply's value hands over, per request type (never guessed from the value). */
export function replyTransfer(type, value) {
  if (type === Req.EXPORT) return [value];
  if (type === Req.BLOCK) return [value.heatmap.buffer, ...value.branches.map((b) => b.maps.buffer)];
  return [];
}

/** Messages the worker sends on its own (no reply expected). */
export const Event = Object.freeze({ PROGRESS: 'progress', BACKEND: 'backend', STARTED: 'started' });

/**
 * Who can fix an error. `input`: the user (bad file, wrong state); `device`: the GPU failed
 * (fall back to the CPU); `internal`: a bug; `crash`: the wasm instance trapped and is gone
 * (restart the worker); `timeout`: no answer in time (restart the worker); `restart`: the
 * request was cancelled because the model restarted (send it again if still wanted).
 */
export const Kind = Object.freeze({ INPUT: 'input', DEVICE: 'device', INTERNAL: 'internal', CRASH: 'crash', TIMEOUT: 'timeout', RESTART: 'restart' });

/**
 * Whose move a failed request is, decided once for every view:
 * - `'cancelled'`: the model restarted (a switch, a newer start) or the answer belongs to a
 *   replaced photo; nothing to show;
 * - `'show'`: the user's (bad input, wrong state) or a bug; show the message, the model stays;
 * - `'recover'`: the model failed (GPU lost, crash, no answer); the page restarts or falls back.
 * Anything that is not a RequestError is a bug in the page (`'show'`).
 * @param {unknown} err
 * @returns {'cancelled'|'show'|'recover'}
 */
export function triage(err) {
  if (err?.stale) return 'cancelled';
  if (!(err instanceof RequestError)) return 'show';
  if (err.kind === Kind.RESTART) return 'cancelled';
  if (err.kind === Kind.INPUT || err.kind === Kind.INTERNAL) return 'show';
  return 'recover';
}

/** The fine-tune's data-set edits: the worker owns the data set, the client replays these after a restart. */
export const REPLAYED = new Set([Req.FT_ADD_CLASS, Req.FT_RENAME, Req.FT_REMOVE_CLASS, Req.FT_ADD_IMAGE]);

/** Longest wait for each request (SwiftShader emulates WebGPU on the CPU: generous, but finite). */
export const TIMEOUT_MS = Object.freeze({
  [Req.INIT]: 600_000, [Req.CLASSIFY]: 300_000, [Req.BLOCK]: 300_000, [Req.EXPLAIN]: 300_000, [Req.FT_STEP]: 600_000,
  [Req.FT_PREDICT]: 300_000, [Req.FT_APPLY]: 120_000, [Req.EXPORT]: 300_000, default: 120_000,
});

export class RequestError extends Error {
  /** @param {number} generation  which start of the worker the request went to */
  constructor(message, kind, type, generation = 0, code = '') { super(message); this.kind = kind; this.request = type; this.generation = generation; this.code = code; }
}

/** The reply the worker posts: success or a typed error. */
export function reply(rid, value) { return { rid, ok: true, value }; }
export function replyError(rid, error) {
  // wasm errors carry `kind`; anything else thrown in the worker is a crash (a trap) or a bug.
  const kind = error?.kind || (error instanceof WebAssembly.RuntimeError ? Kind.CRASH : Kind.INTERNAL);
  const code = typeof error?.code === 'string' ? error.code : undefined;
  return { rid, ok: false, error: { message: String(error?.message || error), kind, ...(code ? { code } : {}) } };
}

/**
 * Restart budget: at most `max` restarts in a row, counted until a request succeeds again
 * (`succeeded()`); beyond that the page stops restarting and says so. Never a restart loop,
 * however slowly each start fails.
 */
export function restartBudget(max = 3) {
  let used = 0;
  return { allow: () => (used < max ? (used += 1, true) : false), succeeded: () => { used = 0; } };
}

/**
 * One worker at a time; `request` resolves with the reply's value or rejects with a
 * RequestError. `start` (re)starts the worker: what was pending fails with kind `restart`, the
 * new worker is initialised and the data-set edits are replayed before anything else is sent.
 */
export class WorkerClient {
  /**
   * @param {() => Worker} makeWorker
   * @param {{onEvent?: (msg) => void, onFailure?: (err: RequestError) => void, timers?: {setTimeout, clearTimeout}}} hooks
   *   onFailure: the worker died (script failed to load, trap, timeout) while no request was waiting.
   */
  constructor(makeWorker, { onEvent = () => {}, onFailure = () => {}, timers = globalThis } = {}) {
    this.makeWorker = makeWorker;
    this.onEvent = onEvent;
    this.onFailure = onFailure;
    this.timers = timers;
    this.pending = new Map();
    this.nextId = 1;
    this.journal = [];
    this.worker = null;
    this.gate = null;
    // Requests made before the first start wait for it (the page wires its views first).
    this.started = false;
    /** Counts starts: errors carry it, so one dead worker is recovered from once. */
    this.generation = 0;
    this.firstStart = new Promise((resolve) => { this.markStarted = resolve; });
  }

  /** Start (or restart) the worker and initialise it; resolves with the INIT reply. */
  async start(init) {
    this.fail('the model restarted before answering', Kind.RESTART);
    const w = this.makeWorker();
    this.worker = w;
    this.generation += 1;
    this.started = true;
    this.markStarted();
    w.onmessage = ({ data }) => this.receive(w, data);
    w.onerror = (e) => {
      e.preventDefault?.();
      this.die(w, `the worker failed: ${e.message || 'its script could not be loaded'}`, Kind.CRASH);
    };
    const ready = this.send(Req.INIT, init);
    const journal = [...this.journal];
    // New requests wait for the replay (an init failure reaches the caller through `ready`).
    // The replay belongs to this worker: it stops if another start replaces it.
    const gate = ready.then(async () => {
      for (const [type, payload] of journal) {
        if (this.worker !== w) return;
        await this.send(type, payload, [], true).catch(() => {});
      }
    }).catch(() => {}).finally(() => { if (this.gate === gate) this.gate = null; });
    this.gate = gate;
    const value = await ready;
    await gate;
    if (this.worker !== w) throw new RequestError('the model restarted while starting', Kind.RESTART, Req.INIT, this.generation);
    return value;
  }

  /** Terminate the worker and reject everything pending with `kind`. */
  fail(message, kind) {
    if (this.worker) this.worker.terminate();
    this.worker = null;
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const p of pending) { this.timers.clearTimeout(p.timer); p.reject(new RequestError(message, kind, p.type, p.generation)); }
    return pending.length;
  }

  die(w, message, kind) {
    if (w !== this.worker) return;
    const generation = this.generation;
    if (this.fail(message, kind) === 0) this.onFailure(new RequestError(message, kind, null, generation));
  }

  receive(w, m) {
    if (w !== this.worker) return;
    if (m.event && m.type === Event.STARTED) { this.restartTimer(w, m.rid); return; }
    if (m.event) { this.onEvent(m); return; }
    const p = this.pending.get(m.rid);
    if (!p) return;
    this.pending.delete(m.rid);
    this.timers.clearTimeout(p.timer);
    if (m.ok) {
      if (REPLAYED.has(p.type) && !p.replay) this.journal.push([p.type, p.payload]);
      p.resolve(m.value);
    } else {
      p.reject(new RequestError(m.error.message, m.error.kind, p.type, p.generation, m.error.code || ''));
    }
  }

  /** The worker began `rid`: its time limit counts from now. */
  restartTimer(w, rid) {
    const p = this.pending.get(rid);
    if (!p) return;
    this.timers.clearTimeout(p.timer);
    p.timer = this.timers.setTimeout(() => this.die(w, `the model did not answer (${p.type}) within ${Math.round(p.ms / 1000)} s`, Kind.TIMEOUT), p.ms);
  }

  /** Send now (the worker queues requests until it is initialised). */
  send(type, payload = {}, transfer = [], replay = false) {
    const w = this.worker;
    if (!w) return Promise.reject(new RequestError('the model is not running', Kind.CRASH, type, this.generation));
    const rid = this.nextId++;
    const generation = this.generation;
    return new Promise((resolve, reject) => {
      const ms = TIMEOUT_MS[type] ?? TIMEOUT_MS.default;
      const timer = this.timers.setTimeout(() => {
        this.die(w, `the model did not answer (${type}) within ${Math.round(ms / 1000)} s`, Kind.TIMEOUT);
      }, ms);
      // Data-set edits keep a copy for replay (a transferred buffer is gone from this side).
      const kept = REPLAYED.has(type) && payload.bytes ? { ...payload, bytes: payload.bytes.slice(0) } : payload;
      this.pending.set(rid, { resolve, reject, timer, type, payload: kept, replay, ms, generation });
      w.postMessage({ ...payload, rid, type }, transfer.length ? transfer : requestTransfer(type, payload));
    });
  }

  /** A request: sent at once, or after the replay when the worker is (re)starting. */
  request(type, payload = {}, transfer = []) {
    if (!this.started) return this.firstStart.then(() => this.request(type, payload, transfer));
    const gate = this.gate;
    // After the gate, ask again: another restart may have begun meanwhile.
    return gate ? gate.then(() => this.request(type, payload, transfer)) : this.send(type, payload, transfer);
  }
}
