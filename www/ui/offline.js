// The page's side of the service worker (sw.js): registration under the build id, one reload
// for cross-origin isolation where the host sends no COOP/COEP, updates that never mix two
// builds in one open page, and the "available offline" line. `?sw=0` turns it all off (and
// unregisters): the page then runs from the network only, as before.
import { RELOAD_FLAG, versionOf, isolationStep, updateStep, offlineText } from '../lib/offline.js';

const WEIGHTS_CACHE = 'googlenet-weights-v1';
const SCOPE = new URL('../../', import.meta.url);
const SW_URL = new URL('sw.js', SCOPE);

/** How long an open page goes without looking for a new build (checked when it is shown again). */
const RECHECK_MS = 30 * 60 * 1000;
const withTimeout = (promise, ms, value = null) => Promise.race([promise, new Promise((r) => setTimeout(() => r(value), ms))]);

function flag(op, value) {
  try {
    if (op === 'get') return sessionStorage.getItem(RELOAD_FLAG) === '1';
    if (value) sessionStorage.setItem(RELOAD_FLAG, '1'); else sessionStorage.removeItem(RELOAD_FLAG);
  } catch { return op === 'get'; } // no storage: behave as if reloaded already (no loop possible)
  return false;
}

/**
 * build-id.json: `{id, files}`; `null` when the server has none (404); `undefined` when there is
 * no clear answer (offline, a server error, a damaged file): the registration in place is kept.
 */
async function fetchBuildId() {
  try {
    const res = await fetch(new URL('build-id.json', SCOPE), { cache: 'no-store', signal: AbortSignal.timeout(8000) });
    if (res.status === 404) return null;
    if (!res.ok) return undefined;
    const list = await res.json();
    return typeof list?.id === 'string' && /^[\w-]+$/.test(list.id) && list.files ? list : undefined;
  } catch {
    return undefined;
  }
}

/**
 * @param {object} o
 * @param {URLSearchParams} o.params
 * @param {string} o.weightsUrl  the default weights (kept by the worker in the weights cache)
 * @param {() => boolean} o.touched  whether the user has done anything on the page yet
 * @param {(id: string) => HTMLElement} o.$
 */
export function setupOffline({ params, weightsUrl, touched, $ }) {
  const sw = globalThis.navigator?.serviceWorker;
  const usable = Boolean(sw) && globalThis.isSecureContext;
  let reg = null;
  let build; // see fetchBuildId
  let updating = false;
  let readyRun = 0;
  /** The registration under way (beforeBoot starts it). */
  let registered = Promise.resolve();
  let lastCheck = 0;
  /** The build of this page's code (null: not known yet). */
  let loadedVersion = null;
  let isStale = false;

  function show(state, reason = '') {
    document.body.dataset.offline = state;
    const line = $('offline-status');
    line.textContent = offlineText({ state, reason });
    line.classList.toggle('warn', state === 'failed');
  }

  async function disable() {
    for (const r of await sw.getRegistrations()) await r.unregister();
    for (const name of await caches.keys()) if (name.startsWith('googlenet-app-')) await caches.delete(name);
    document.body.dataset.offline = 'off';
  }

  function offerUpdate() {
    const w = reg?.waiting;
    if (!w) return;
    const step = updateStep({
      waiting: true,
      controlled: Boolean(sw.controller && reg.active),
      pageVersion: sw.controller ? versionOf(sw.controller.scriptURL) : null,
      waitingVersion: versionOf(w.scriptURL),
      touched: touched(),
    });
    if (step === 'none') return;
    /** `alone`: only if no other tab runs this page (their builds must not change under them). */
    const take = (alone) => new Promise((resolve) => {
      updating = true;
      const channel = new MessageChannel();
      channel.port1.onmessage = (e) => { if (!e.data.ok) updating = false; resolve(e.data.ok); };
      w.postMessage({ type: 'skip-waiting', alone }, [channel.port2]);
    });
    if (step === 'reload') take(true).then((ok) => { if (!ok) offer('A new version of this page is ready.', () => take(false)); });
    else offer('A new version of this page is ready.', () => take(false));
  }

  function offer(text, act) {
    const note = $('update-note');
    note.firstChild.textContent = `${text} `;
    note.hidden = false;
    note.querySelector('button').onclick = act;
  }

  /**
   * Another tab let a new build take over: this page's code is the old build, and anything it
   * loads from now on (a restarted worker, another engine) would be the new one. Untouched, it
   * reloads; in use, it says so, and restarts the model only by reloading (see `stale`).
   */
  function takenOver() {
    if (updating) { location.reload(); return; }
    const now = versionOf(sw.controller?.scriptURL || '');
    if (!sw.controller || loadedVersion === null || now === loadedVersion) return;
    isStale = true;
    document.body.dataset.offline = 'stale';
    if (!touched()) { location.reload(); return; }
    offer('A new version of this page was installed in another tab.', () => location.reload());
  }

  const watched = new WeakSet();
  function watchUpdates() {
    if (!watched.has(reg)) {
      watched.add(reg);
      const r = reg;
      r.addEventListener('updatefound', () => {
        const next = r.installing;
        next?.addEventListener('statechange', () => { if (next.state === 'installed') offerUpdate(); });
      });
    }
    offerUpdate();
  }

  /** Registers the service worker of the server's build (offline: keeps the one in place). */
  async function register() {
    lastCheck = Date.now();
    build = await fetchBuildId();
    if (loadedVersion === null && build !== undefined) loadedVersion = build ? build.id : '';
    try {
      // Offline, the registration in place stays as it is (its copy is what runs now).
      reg = build === undefined
        ? await sw.getRegistration(SCOPE.href) || null
        : await sw.register(build ? `${SW_URL.href}?v=${build.id}` : SW_URL.href, { scope: SCOPE.href, updateViaCache: 'none' });
    } catch (e) {
      console.warn('service worker not registered:', e);
      reg = null;
    }
    if (reg) watchUpdates();
  }

  /**
   * Before the model starts: register, and reload once under the service worker when the page
   * is not cross-origin isolated. Resolves to false when the page is about to reload.
   */
  async function beforeBoot() {
    if (!usable) { document.body.dataset.offline = 'unsupported'; return true; }
    if (params.get('sw') === '0') { await disable().catch(() => {}); return true; }
    // The build this page's code is: the copy that served it, or (first visit) the server's.
    loadedVersion = sw.controller ? versionOf(sw.controller.scriptURL) : null;
    sw.addEventListener('controllerchange', takenOver);
    // A page left open (a classroom day) looks for a new build when it is shown again.
    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState === 'visible' && Date.now() - lastCheck > RECHECK_MS) registered = register();
    });
    registered = register();
    const isolated = Boolean(globalThis.crossOriginIsolated);
    const reloadedBefore = flag('get');
    if (isolated && reloadedBefore) { document.body.dataset.isolation = 'service-worker'; flag('set', false); }
    // Isolated already (the host sends the headers, or the service worker did): the model
    // starts at once, the registration goes on beside it.
    if (isolated) return true;
    await registered;
    let step = isolationStep({ isolated, canRegister: Boolean(reg), controlled: Boolean(sw.controller), reloadedBefore });
    if (step === 'wait') {
      const controlled = await withTimeout(new Promise((r) => sw.addEventListener('controllerchange', () => r(true), { once: true })), 10_000, false);
      step = controlled ? 'reload' : 'go';
    }
    if (step === 'reload') {
      flag('set', true);
      location.reload();
      return false;
    }
    return true;
  }

  /** The model runs on `engine` with the default weights: make sure all of it is kept, and say so. */
  async function modelReady({ engine, custom = false }) {
    if (!usable || params.get('sw') === '0') return;
    await registered;
    if (!reg) return;
    const run = ++readyRun;
    show('saving');
    const failed = (reason) => { if (run === readyRun) show('failed', reason); };
    if (build === null) return failed('this server has no build-id.json (see scripts/build-id.mjs)');
    if (build === undefined && !reg.active && !reg.waiting && !reg.installing) return failed('the build id could not be read');
    const ready = await withTimeout(sw.ready, 120_000);
    const active = ready?.active;
    if (!active) return failed('the service worker did not start');
    const reply = await withTimeout(new Promise((resolve) => {
      const channel = new MessageChannel();
      channel.port1.onmessage = (e) => resolve(e.data);
      active.postMessage({ type: 'keep', engines: [engine] }, [channel.port2]);
    }), 600_000, { ok: false, error: 'no answer from the service worker' });
    if (!reply.ok) return failed(reply.error);
    const weights = await caches.open(WEIGHTS_CACHE).then((c) => c.match(weightsUrl)).catch(() => null);
    if (!weights) {
      return failed(custom
        ? 'the default weights have not been downloaded yet (this visit loads the weights named in its address); open the page once without ?weights= to keep them'
        : 'the weights are not in the cache');
    }
    if (run !== readyRun) return;
    document.body.dataset.offlineBuild = reply.version;
    show('ready', custom ? 'custom' : '');
    navigator.storage?.persist?.().catch(() => {});
  }

  /** Whether the page's code is older than what the service worker now serves (reload first). */
  const stale = () => isStale;
  return { beforeBoot, modelReady, stale };
}
