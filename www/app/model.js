// The model's lifecycle in the page, without the DOM: starting it (and what a failed start
// offers), recovering from a lost GPU or a crashed worker within a budget, putting the user's
// own model back after a restart, the engine race, and the photos: every photo takes a
// generation, and only the newest one's answer reaches the screen. What it shows goes through
// `ui` callbacks, so `node --test` covers these decisions (model.test.js).
import { Req, Kind, RequestError, restartBudget, triage } from '../lib/protocol.js';
import { Generations, Stale } from '../lib/generation.js';
import { decide, describeMeasurement, engineLabel, measureKey, median } from '../lib/backend.js';

/** `n` classes, in words ("1 class", "1,000 classes"). */
export const classCount = (n) => `${n.toLocaleString()} ${n === 1 ? 'class' : 'classes'}`;

/**
 * @param {object} o
 * @param {import('../lib/protocol.js').WorkerClient} o.client  the page's model worker
 * @param {() => import('../lib/protocol.js').WorkerClient} o.makeProbe  a second worker for the engine race
 * @param {(requested: string) => Promise<object>} o.choose  the engine for a start (lib/backend.js chooseEngine)
 * @param {{weightsUrl: string, defaultWeightsUrl: string, labelsUrl: string, stallMs: number, fault: string, requested: string}} o.config
 * @param {(key: string, record: object) => void} o.remember  keeps a race's outcome for this adapter
 * @param {object} o.ui  what the page shows (see the calls below; every one is required)
 */
export function createModel({ client, makeProbe, choose, config, remember, ui }) {
  const photos = new Generations();
  const state = {
    /** The weights this start loads: the default, or `?weights=` until the user goes back to the default. */
    weightsUrl: config.weightsUrl,
    /** Why the last start failed (null: it did not): the page offers Retry and the default weights. */
    startError: null,
    /** Starts under way (a photo given meanwhile waits for the newest). */
    booting: 0,
    /** The user's own model (loaded weights, or an applied fine-tune) as safetensors bytes: put back after a restart. */
    userModel: null,
    requested: config.requested,
    backend: null,
    label: '',
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
    /** How many times the model was started (tests read it: no restart loops). */
    boots: 0,
  };
  const custom = () => state.weightsUrl !== config.defaultWeightsUrl;
  /** The model in use now has this report (its labels, blocks, heads): the views follow it. */
  const setReport = (report) => { state.report = report; ui.report(report); };

  /**
   * (Re)start the model on `requested`; `reason` says why when the page chose for the user.
   * Resolves to whether the model is ready (on failure, the page says what happened and offers
   * Retry and the default weights). The user's own model (loaded or fine-tuned) is put back.
   */
  async function boot(requested, reason = '') {
    // A new build took over in another tab: a worker started now would be the new build's code
    // under this page's old code. Reload instead (the page says so before).
    if (ui.stale()) { ui.reload(); return false; }
    state.ready = false;
    state.booting += 1;
    state.startError = null;
    ui.startFailure(null);
    state.boots += 1;
    ui.booted(state.boots);
    state.blockCache.clear();
    ui.status('loading');
    try {
      // Fault hooks act on the first start only (a restarted model is meant to work).
      const fault = state.boots === 1 ? config.fault : '';
      const c = await choose(requested);
      // After a WebGPU failure (`reason`, always with requested 'cpu') the page says why.
      const choice = reason ? { ...c, reason: `${reason}; ${c.cpu.why}`, fallback: true } : c;
      state.choice = choice;
      // A race cut short by this start (a switch) may run again on the next image.
      state.measuring = null;
      const bootAt = ui.now();
      const info = await client.start({
        engine: choice.engine, threads: choice.threads, cpu: choice.cpu, adapter: choice.adapter, reason: choice.reason,
        fallback: choice.fallback, weightsUrl: state.weightsUrl, defaultWeightsUrl: config.defaultWeightsUrl,
        labelsUrl: config.labelsUrl, stallMs: config.stallMs, fault,
      });
      state.backend = info.backend;
      state.label = info.label;
      state.settings = info.settings;
      // The user's model comes back before anything is classified with the default one.
      const restored = state.userModel ? await restoreUserModel() : null;
      state.ready = true;
      ui.timeline(bootAt, info.phases);
      ui.backend(info);
      setReport(restored || info.report);
      ui.weightsLoaded(restored || info.report, restored ? state.userModel.name : null);
      ui.settings(info.settings);
      ui.offlineReady({ engine: info.engine, custom: custom() });
      ui.status('waiting for an image');
      const pending = state.waiting;
      state.waiting = null;
      if (pending && photos.current(pending.gen)) classify(pending.bytes, pending.gen);
      return true;
    } catch (e) {
      if (triage(e) === 'cancelled') return false; // another start replaced this one
      if (e.request === Req.INIT && triage(e) === 'show') {
        // The model did not load (unreachable, refused, stalled, bad weights): say so and offer a way on.
        state.startError = e;
        ui.startFailure(e, { custom: custom(), waiting: Boolean(state.waiting) });
        ui.status('error');
        return false;
      }
      await recover(e, null);
      // Never a stuck "loading": a model that did not start says so.
      if (!state.ready) ui.status('error');
      return state.ready;
    } finally {
      state.booting -= 1;
    }
  }

  /** The user's model back in a fresh worker; null (and a note) when it cannot be. */
  async function restoreUserModel() {
    const m = state.userModel;
    try {
      const bytes = m.bytes.slice().buffer;
      const report = await client.request(Req.LOAD_WEIGHTS, { bytes, name: m.name, variant: m.variant });
      ui.modelChanged();
      return report;
    } catch (e) {
      if (triage(e) === 'cancelled') throw e;
      state.userModel = null;
      ui.error(`${m.name} could not be put back after the restart (${e.message}); the default weights are in use.`);
      return null;
    }
  }

  /** Retry the start that failed (the same weights). */
  const retry = () => boot(state.fallback ? 'cpu' : state.requested, state.fallback || '');

  /** Leave `?weights=` (or a loaded model that failed): the default weights, kept offline. */
  function useDefaultWeights() {
    state.weightsUrl = config.defaultWeightsUrl;
    state.userModel = null;
    return retry();
  }

  /** What the page showed belonged to a model that is gone. */
  function forgetShown() {
    ui.clear();
    state.lastImage = null;
    photos.clear();
  }

  /**
   * A request failed. Input errors are shown; a failed GPU moves to the CPU (and redoes `again`
   * once); a crash or a silent worker restarts it, on the backend it ran on, within a budget, and
   * without redoing the input that crashed it. Every request that failed with one dead worker
   * lands here; only the first restarts it. Returns true when `again` was re-run.
   */
  async function recover(err, again) {
    if (!(err instanceof RequestError) && !err?.stale) { ui.error(`Internal error in the page: ${err.message}`); return false; }
    const whose = triage(err);
    if (whose === 'cancelled') return false;
    if (whose === 'show') { ui.error(err.message); return false; }
    if (err.generation && err.generation <= state.recoveredGeneration) return false;
    state.recoveredGeneration = Math.max(state.recoveredGeneration, err.generation || 0);
    if (!state.budget.allow()) {
      ui.error(`The model stopped repeatedly (last: ${err.message}). Reload the page to try again.`);
      ui.status('error');
      return false;
    }
    forgetShown();
    ui.modelRestarted({ restored: Boolean(state.userModel) });
    const onGpu = state.backend === 'webgpu' || (state.backend === null && state.requested !== 'cpu');
    if (err.kind === Kind.DEVICE && onGpu) {
      state.fallback = `WebGPU failed (${err.message}); switched to the CPU automatically`;
      if (await boot('cpu', state.fallback) && again) { again(); return true; }
      return false;
    }
    const what = err.request === Req.CLASSIFY ? 'This image stopped the model' : 'The model stopped';
    const mine = state.userModel?.name;
    // (When the restart fails too, its own failure has been reported.)
    if (await boot(state.fallback ? 'cpu' : state.requested, state.fallback || '')) {
      const back = state.userModel ? `your model (${mine}) was put back` : mine ? 'the default weights are back' : 'it runs the default weights';
      ui.error(`${what} (${err.message}); it was restarted and is ready again: ${back}.`);
    }
    return false;
  }

  /**
   * Block `index`'s live view of the photo on screen. A view asked for while a newer photo is on
   * its way, or answered after one replaced it, is dropped (`Stale`): the newer photo's result
   * reopens the views.
   */
  async function blockView(index) {
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
    return view;
  }

  /**
   * A new photo (`read` gives its bytes: a file read, a fetch, a camera frame): it takes a
   * generation at once (or is given one taken earlier), so a slower read of an earlier photo
   * finishing later is dropped.
   */
  async function takePhoto(read, what = 'The image', gen = photos.take()) {
    let bytes;
    try {
      bytes = await read();
    } catch (e) {
      if (photos.current(gen)) {
        ui.error(`${what} could not be read: ${e.message || e}`);
        if (state.ready) ui.status('error');
      }
      return;
    }
    if (!photos.current(gen)) return;
    await classify(new Uint8Array(bytes), gen);
  }

  /** Classify `bytes` as photo `gen` (a new generation unless given); only the newest photo is shown. */
  async function classify(bytes, gen = photos.take()) {
    if (!photos.current(gen)) return;
    ui.error('');
    if (!state.ready) {
      state.waiting = { bytes, gen };
      if (state.startError && !state.booting) {
        // No model is coming by itself: the failure stays on screen, with what happens to the photo.
        ui.startFailure(state.startError, { custom: custom(), waiting: true });
        ui.status('error');
      } else {
        ui.status('loading the model; your image is classified as soon as it is ready');
      }
      return;
    }
    ui.status('classifying');
    const run = async () => {
      try {
        const res = await photos.guard(gen, client.request(Req.CLASSIFY, { bytes: bytes.slice().buffer }), 'result');
        state.budget.succeeded();
        // Decoded before anything is drawn, so the preview and the result land together.
        const bmp = await ui.decode(bytes);
        if (!photos.current(gen)) { bmp?.close?.(); return; }
        state.lastImage = bytes;
        state.blockCache.clear();
        photos.show(gen);
        state.firstResultAt ??= ui.now();
        ui.result({ res, bmp, gen, label: state.label, firstResultAt: state.firstResultAt });
        ui.status('ready');
        if (state.choice?.probe && !state.measuring) state.measuring = race(bytes);
      } catch (e) {
        if (e instanceof Stale) return; // a newer photo replaced this one: its answer is not shown
        if (e.kind === Kind.RESTART) {
          // The model restarted (a backend switch): the newest photo waits for the new one.
          if (photos.current(gen)) {
            if (state.ready) { run(); return; }
            state.waiting = { bytes, gen };
            ui.status('loading the model; your image is classified as soon as it is ready');
          }
          return;
        }
        // A stale answer must not sit beside an error.
        forgetShown();
        // The request failed (even if a restart made the model ready again).
        if (!(await recover(e, run))) ui.status('error');
      }
    };
    await run();
  }

  /** Classify the photo on screen again (a new model), unless a newer one is on its way. */
  function reclassifyShown() {
    if (state.lastImage && photos.settled()) classify(state.lastImage);
  }

  /** The photo on screen waits for the next start (a new engine), unless a newer one is on its way. */
  function carryShownOver() {
    if (state.lastImage && photos.settled() && !state.waiting) state.waiting = { bytes: state.lastImage, gen: photos.take() };
  }

  /**
   * auto, first visit on this adapter: time the CPU engine (warm) and WebGPU in a second worker on
   * the same image, remember the winner for this adapter, and move to WebGPU only if it won.
   * Runs after the first result, so the page answers first and measures after.
   */
  async function race(bytes) {
    const choice = state.choice;
    if (ui.stale()) return; // (its worker would be another build's code)
    const cpuLabel = engineLabel(choice);
    try {
      // Two warm runs (the first result included the engine's warm-up).
      const cpu = [];
      for (let i = 0; i < 2; i++) cpu.push((await client.request(Req.CLASSIFY, { bytes: bytes.slice().buffer })).ms);
      const cpuMs = median(cpu);
      ui.reason(`${cpuLabel}: ${Math.round(cpuMs)} ms; measuring WebGPU (${choice.adapter}) on the same image…`);
      const probe = makeProbe();
      let gpuMs = null, note = '';
      try {
        const info = await probe.start({
          engine: 'webgpu', threads: 1, cpu: null, adapter: choice.adapter, reason: 'measurement', weightsUrl: state.weightsUrl,
          defaultWeightsUrl: config.defaultWeightsUrl, labelsUrl: config.labelsUrl, stallMs: config.stallMs,
        });
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
      ui.raced(record.winner);
      if (state.choice !== choice) return; // the user switched engines meanwhile
      state.choice = { ...choice, probe: false };
      if (record.winner === 'webgpu' && state.requested === 'auto') {
        // Faster on this machine: start on WebGPU and show the photo on screen's answer from it
        // (a newer photo on its way waits for the new engine by itself).
        carryShownOver();
        await boot('auto');
      } else {
        ui.reason(`${describeMeasurement(record)}; ${choice.cpu.why}`);
      }
    } catch (e) {
      if (e.kind !== Kind.RESTART) ui.reason(`${ui.reasonText()} (the WebGPU measurement failed: ${e.message})`);
    }
  }

  /** The user's weights file: validated in the worker before it replaces the model in use. */
  async function loadOwnWeights(bytes, name, variant) {
    ui.error('');
    if (!state.ready) { ui.error('The model is still loading; add your weights when it is ready.'); return false; }
    const kept = new Uint8Array(bytes.slice(0));
    const before = state.report;
    ui.status('loading weights');
    try {
      const report = await client.request(Req.LOAD_WEIGHTS, { bytes, name, variant });
      state.userModel = { bytes: kept, name, variant, fineTuned: false };
      state.blockCache.clear();
      forgetShown();
      setReport(report);
      ui.weightsLoaded(report, name);
      ui.status('waiting for an image');
      ui.modelChanged();
      return true;
    } catch (e) {
      if (triage(e) === 'show') {
        ui.error(`${name} was not loaded: ${e.message}. Still using the previous model (${before.variant}, ${classCount(before.num_classes)}).`);
        ui.status(state.lastImage ? 'ready' : 'waiting for an image');
      } else if (!(await recover(e, null)) && !state.ready) {
        ui.status('error');
      }
      return false;
    }
  }

  /** The fine-tuned model classifies now; its bytes are kept here (put back after a restart, exported from here). */
  async function applied(report) {
    setReport(report);
    state.blockCache.clear();
    reclassifyShown();
    const bytes = await client.request(Req.EXPORT);
    state.userModel = { bytes: new Uint8Array(bytes), name: 'your fine-tuned model', variant: '', fineTuned: true };
    return state.userModel.bytes;
  }

  /** Another engine: the photo on screen is classified again on it (a photo on its way waits for it by itself). */
  function switchEngine(requested) {
    state.requested = requested;
    carryShownOver();
    forgetShown();
    state.fallback = '';
    ui.modelRestarted({ restored: Boolean(state.userModel) });
    return boot(requested);
  }

  return {
    state, photos, boot, recover, retry, useDefaultWeights, blockView, takePhoto, classify, reclassifyShown,
    loadOwnWeights, applied, switchEngine,
    /** The fine-tuned model's bytes kept in the page (null: none). */
    keptModel: () => (state.userModel?.fineTuned ? state.userModel.bytes : null),
  };
}
