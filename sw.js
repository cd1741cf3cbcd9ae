// The service worker: the page offline after one visit, and cross-origin isolation where the
// host cannot send the headers (as coi-serviceworker does).
//
// Registered by the page (www/ui/offline.js) as `sw.js?v=<build id>`, the id and the file list
// (each file's SHA-256) from build-id.json (scripts/build-id.mjs). One build, one cache:
//   install   fetches build-id.json; refuses a build that is not its own (the server moved on);
//             fetches the page and www/ (and the engines the previous copy held), checks each
//             file against its hash and stores it in `googlenet-app-<id>`; the list itself goes
//             in last, so a cache holding it is complete. Any failure fails the install and the
//             previous copy stays in use.
//   waiting   an update waits until the page says it may take over (the page does so before
//             the user has done anything, else it offers a Reload), so an open page never mixes
//             its code with a newer build's.
//   activate  deletes every other build's cache, then takes control of the pages.
//   fetch     the build's files come from its cache (an engine not kept yet, from the network);
//             anything under weights/ comes from the worker's cache `googlenet-weights-v1`
//             (the one copy: the worker stores the files after validating them) or the network;
//             build-id.json, sw.js, URLs with a query (test hooks such as ?delay=) and anything
//             else go to the network. Every response gets COOP/COEP headers.
//   message   {type: 'keep', engines} stores those engine builds (pkg/<engine>/…) and answers
//             whether the copy is complete; {type: 'skip-waiting'} lets an update take over
//             ({alone: true}: only if the asking page is the only one open, see www/ui/offline.js).
// Without a build id (`sw.js` with no ?v=, build-id.json missing) nothing is stored: only the
// isolation headers and the weights cache route.
// A classic script (module service workers are not everywhere yet); its pure helpers are
// tested in www/lib/offline.test.js.

const VERSION = new URL(self.location.href).searchParams.get('v') || '';
const PREFIX = 'googlenet-app-';
const APP_CACHE = PREFIX + VERSION;
const WEIGHTS_CACHE = 'googlenet-weights-v1';
/** The build's file list inside its own cache: present only once every file is stored. */
const LIST_KEY = 'build-id.json';

/** `url`'s path under `scope` (both absolute), or null when it is elsewhere. */
function relPath(url, scope) {
  const u = new URL(url), s = new URL(scope);
  if (u.origin !== s.origin || !u.pathname.startsWith(s.pathname)) return null;
  return decodeURIComponent(u.pathname.slice(s.pathname.length));
}

/**
 * How to answer a request: `{kind: 'app', key}` (from the build's cache, `key` a listed file),
 * `{kind: 'weights'}`, or `{kind: 'network'}`.
 * @param {string} url  absolute
 * @param {string} scope  absolute, ends with '/'
 * @param {Record<string,string>|null} files  the build's files (null: none kept)
 * @param {string} mode  the request's mode ('navigate' for a page load)
 */
function route(url, scope, files, mode) {
  const rel = relPath(url, scope);
  if (rel === null || rel === 'build-id.json' || rel === 'sw.js') return { kind: 'network' };
  if (rel.startsWith('weights/')) return { kind: 'weights' };
  if (!files) return { kind: 'network' };
  // The page, with any query (?backend=…, ?present=1): the same document.
  if (mode === 'navigate' && (rel === '' || rel === 'index.html')) return files['index.html'] ? { kind: 'app', key: 'index.html' } : { kind: 'network' };
  if (new URL(url).search === '' && Object.hasOwn(files, rel)) return { kind: 'app', key: rel };
  return { kind: 'network' };
}

/** Files of the page (everything but the engines) and of the given engine builds. */
function planFiles(files, engines) {
  return Object.keys(files).filter((f) => !f.startsWith('pkg/') || engines.some((e) => f.startsWith(`pkg/${e}/`)));
}

/** The engines a cache holds, from its keys (absolute URLs) under `scope`. */
function enginesIn(keys, scope) {
  const found = new Set();
  for (const k of keys) {
    const m = /^pkg\/([^/]+)\//.exec(relPath(k, scope) || '');
    if (m) found.add(m[1]);
  }
  return [...found].sort();
}

/** Response headers plus cross-origin isolation (what the host may not send). */
function isolatedHeaders(headers) {
  const h = new Headers(headers);
  h.set('Cross-Origin-Opener-Policy', 'same-origin');
  h.set('Cross-Origin-Embedder-Policy', 'require-corp');
  h.set('Cross-Origin-Resource-Policy', 'same-origin');
  return h;
}

function isolate(res) {
  if (!res || res.type === 'opaque' || res.type === 'opaqueredirect' || res.status === 0) return res;
  return new Response(res.body, { status: res.status, statusText: res.statusText, headers: isolatedHeaders(res.headers) });
}

function hex(buf) {
  return [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/** Fetches `rel` from the server (revalidating), checks its hash, stores it. */
async function keepFile(cache, scope, rel, hash) {
  const url = new URL(rel, scope).href;
  if (await cache.match(url)) return;
  const res = await fetch(url, { cache: 'no-cache' });
  if (!res.ok) throw new Error(`${rel}: HTTP ${res.status}`);
  const bytes = await res.arrayBuffer();
  const got = hex(await crypto.subtle.digest('SHA-256', bytes));
  if (got !== hash) throw new Error(`${rel} is not the file of build ${VERSION} (the server changed meanwhile)`);
  await cache.put(url, new Response(bytes, { headers: { 'content-type': res.headers.get('content-type') || 'application/octet-stream' } }));
}

async function keepAll(cache, scope, files, list) {
  const queue = [...list];
  const run = async () => { for (let f; (f = queue.shift()) !== undefined;) await keepFile(cache, scope, f, files[f]); };
  await Promise.all(Array.from({ length: 6 }, run));
}

let listPromise = null;
/** This build's file list, once its cache is complete (null before, or without a build id). */
function builtFiles() {
  if (!VERSION) return Promise.resolve(null);
  listPromise ??= caches.open(APP_CACHE).then((c) => c.match(LIST_KEY)).then((r) => (r ? r.json() : null)).then((l) => l?.files || null).catch(() => null);
  return listPromise.then((files) => { if (!files) listPromise = null; return files; });
}

if (typeof self.addEventListener === 'function' && typeof caches !== 'undefined') {
  self.addEventListener('install', (event) => {
    event.waitUntil((async () => {
      if (!VERSION) return self.skipWaiting();
      const scope = self.registration.scope;
      const res = await fetch(new URL('build-id.json', scope), { cache: 'no-store' });
      if (!res.ok) throw new Error(`build-id.json: HTTP ${res.status}`);
      const list = await res.json();
      if (list.id !== VERSION) throw new Error(`the server has build ${list.id}, not ${VERSION}`);
      // The engines the previous copy held (the page ran them): kept again, so an update
      // never leaves a page offline without its engine.
      const engines = new Set();
      for (const name of await caches.keys()) {
        if (name.startsWith(PREFIX) && name !== APP_CACHE) for (const e of enginesIn((await (await caches.open(name)).keys()).map((r) => r.url), scope)) engines.add(e);
      }
      const cache = await caches.open(APP_CACHE);
      await keepAll(cache, scope, list.files, planFiles(list.files, [...engines]));
      await cache.put(LIST_KEY, new Response(JSON.stringify(list), { headers: { 'content-type': 'application/json' } }));
      // The first install takes over at once; an update waits for the page (see the top).
    })());
  });

  self.addEventListener('activate', (event) => {
    event.waitUntil((async () => {
      for (const name of await caches.keys()) if (name.startsWith(PREFIX) && name !== APP_CACHE) await caches.delete(name);
      await self.clients.claim();
    })());
  });

  self.addEventListener('message', (event) => {
    const m = event.data || {};
    if (m.type === 'skip-waiting') {
      event.waitUntil((async () => {
        const open = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
        const ok = !m.alone || open.length <= 1;
        if (ok) await self.skipWaiting();
        event.ports[0]?.postMessage({ ok });
      })());
      return;
    }
    if (m.type !== 'keep') return;
    const answer = (value) => event.ports[0]?.postMessage(value);
    event.waitUntil((async () => {
      try {
        const files = await builtFiles();
        if (!files) return answer({ ok: false, version: VERSION, error: VERSION ? 'the offline copy is incomplete' : 'this server has no build-id.json' });
        const cache = await caches.open(APP_CACHE);
        await keepAll(cache, self.registration.scope, files, planFiles(files, m.engines || []).filter((f) => f.startsWith('pkg/')));
        answer({ ok: true, version: VERSION });
      } catch (e) {
        answer({ ok: false, version: VERSION, error: String(e?.message || e) });
      }
    })());
  });

  self.addEventListener('fetch', (event) => {
    const req = event.request;
    if (req.method !== 'GET' || new URL(req.url).origin !== self.location.origin) return;
    if (req.cache === 'only-if-cached' && req.mode !== 'same-origin') return;
    event.respondWith((async () => {
      const scope = self.registration.scope;
      const r = route(req.url, scope, await builtFiles(), req.mode);
      if (r.kind === 'weights') {
        const hit = await caches.open(WEIGHTS_CACHE).then((c) => c.match(req.url)).catch(() => null);
        return isolate(hit || await fetch(req));
      }
      if (r.kind === 'app') {
        const hit = await caches.open(APP_CACHE).then((c) => c.match(new URL(r.key, scope).href));
        if (hit) return isolate(hit);
      }
      return isolate(await fetch(req));
    })());
  });
}
