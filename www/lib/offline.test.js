// The offline pieces: the page's decisions (lib/offline.js), the service worker's pure helpers
// (sw.js, a classic script, run here in a VM context) and the build id (scripts/build-id.mjs).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import vm from 'node:vm';
import { fileURLToPath } from 'node:url';
import { versionOf, isolationStep, updateStep, offlineText } from './offline.js';
import { buildInfo, appFiles } from '../../scripts/build-id.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** sw.js's top-level functions, as the service worker `sw.js?v=abc` at http://h/app/ sees them. */
function loadSw() {
  const self = { location: { href: 'http://h/app/sw.js?v=abc' } };
  const ctx = vm.createContext({ self, URL, Headers, Response, console });
  vm.runInContext(fs.readFileSync(path.join(root, 'sw.js'), 'utf8'), ctx);
  return ctx;
}

test('the page reloads once for isolation, and only when a service worker controls it', () => {
  assert.equal(isolationStep({ isolated: true, canRegister: true, controlled: true, reloadedBefore: false }), 'go');
  assert.equal(isolationStep({ isolated: false, canRegister: false, controlled: false, reloadedBefore: false }), 'go');
  assert.equal(isolationStep({ isolated: false, canRegister: true, controlled: false, reloadedBefore: false }), 'wait');
  assert.equal(isolationStep({ isolated: false, canRegister: true, controlled: true, reloadedBefore: false }), 'reload');
  // Still not isolated after the reload: carry on (one thread), never a loop.
  assert.equal(isolationStep({ isolated: false, canRegister: true, controlled: true, reloadedBefore: true }), 'go');
});

test('an update takes over an untouched page, and is offered on a used one', () => {
  assert.equal(versionOf('http://h/sw.js?v=12ab'), '12ab');
  assert.equal(versionOf('http://h/sw.js'), '');
  assert.equal(versionOf('not a url'), '');
  assert.equal(updateStep({ waiting: false, controlled: true, pageVersion: 'a', waitingVersion: '', touched: false }), 'none');
  assert.equal(updateStep({ waiting: true, controlled: true, pageVersion: 'a', waitingVersion: 'a', touched: false }), 'none');
  assert.equal(updateStep({ waiting: true, controlled: true, pageVersion: 'a', waitingVersion: 'b', touched: false }), 'reload');
  assert.equal(updateStep({ waiting: true, controlled: true, pageVersion: 'a', waitingVersion: 'b', touched: true }), 'offer');
  assert.equal(updateStep({ waiting: true, controlled: true, pageVersion: 'a', waitingVersion: '', touched: true }), 'offer');
  // The first install: nothing to replace, no reload.
  assert.equal(updateStep({ waiting: true, controlled: false, pageVersion: null, waitingVersion: 'a', touched: false }), 'none');
  assert.equal(offlineText({ state: 'ready' }), 'available offline');
  assert.equal(offlineText({ state: 'failed', reason: 'x' }), 'not available offline: x');
  assert.equal(offlineText({ state: 'off' }), '');
});

test('service worker routes: build files from its cache, anything under weights/ from the weights cache', () => {
  const sw = loadSw();
  const scope = 'http://h/app/';
  const files = { 'index.html': '1', 'www/main.js': '2', 'pkg/threads/googlenet_bg.wasm': '3', 'pkg/cpu/googlenet.js': '4' };
  const r = (url, mode = 'cors', f = files) => JSON.parse(JSON.stringify(sw.route(url, scope, f, mode)));
  assert.deepEqual(r('http://h/app/www/main.js'), { kind: 'app', key: 'www/main.js' });
  assert.deepEqual(r('http://h/app/', 'navigate'), { kind: 'app', key: 'index.html' });
  assert.deepEqual(r('http://h/app/?present=1&backend=cpu', 'navigate'), { kind: 'app', key: 'index.html' });
  assert.deepEqual(r('http://h/app/index.html', 'navigate'), { kind: 'app', key: 'index.html' });
  // Whatever the weights file is called (f32 today, f16 tomorrow), and the labels.
  assert.deepEqual(r('http://h/app/weights/bvlc_googlenet.f16.safetensors'), { kind: 'weights' });
  assert.deepEqual(r('http://h/app/weights/synset_words.txt'), { kind: 'weights' });
  assert.deepEqual(r('http://h/app/weights/x.safetensors?delay=4000'), { kind: 'weights' });
  // Always asked of the server: the build id and the service worker; test hooks; unknown files.
  for (const u of ['http://h/app/build-id.json', 'http://h/app/sw.js', 'http://h/app/www/main.js?delay=10', 'http://h/app/www/no-such-worker.js', 'http://h/elsewhere.js', 'http://other/app/www/main.js']) {
    assert.deepEqual(r(u), { kind: 'network' }, u);
  }
  // Without a complete copy nothing comes from the app cache.
  assert.deepEqual(r('http://h/app/www/main.js', 'cors', null), { kind: 'network' });
  assert.deepEqual([...sw.planFiles(files, ['threads'])].sort(), ['index.html', 'pkg/threads/googlenet_bg.wasm', 'www/main.js']);
  assert.deepEqual([...sw.planFiles(files, [])].sort(), ['index.html', 'www/main.js']);
  // An engine whose name starts another's: each keeps only its own folder.
  const both = { ...files, 'pkg/threads-relaxed/googlenet_bg.wasm': '5' };
  assert.deepEqual([...sw.planFiles(both, ['threads-relaxed'])].sort(), ['index.html', 'pkg/threads-relaxed/googlenet_bg.wasm', 'www/main.js']);
  assert.deepEqual([...sw.planFiles(both, ['threads'])].sort(), ['index.html', 'pkg/threads/googlenet_bg.wasm', 'www/main.js']);
  assert.deepEqual([...sw.enginesIn(['http://h/app/pkg/threads/googlenet.js', 'http://h/app/pkg/threads/snippets/x/a.js', 'http://h/app/www/main.js', 'http://h/app/pkg/cpu/googlenet.js'], scope)], ['cpu', 'threads']);
  const h = sw.isolatedHeaders(new Headers({ 'content-type': 'text/javascript' }));
  assert.equal(h.get('cross-origin-opener-policy'), 'same-origin');
  assert.equal(h.get('cross-origin-embedder-policy'), 'require-corp');
  assert.equal(h.get('content-type'), 'text/javascript');
});

test('the build id covers every app file and sw.js; tests and .gz are left out', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'build-id-'));
  try {
    const put = (f, text) => { fs.mkdirSync(path.dirname(path.join(dir, f)), { recursive: true }); fs.writeFileSync(path.join(dir, f), text); };
    put('index.html', '<!doctype html>');
    put('www/main.js', 'a');
    put('www/lib/x.js', 'b');
    put('www/lib/x.test.js', 'test');
    put('www/main.js.gz', 'gz');
    put('pkg/threads/googlenet_bg.wasm', 'w');
    put('pkg/threads/snippets/r/src/workerHelpers.no-bundler.js', 'h');
    put('sw.js', 'sw1');
    put('README.md', 'not served as part of the app');
    assert.deepEqual(appFiles(dir), ['index.html', 'pkg/threads/googlenet_bg.wasm', 'pkg/threads/snippets/r/src/workerHelpers.no-bundler.js', 'www/lib/x.js', 'www/main.js']);
    const a = buildInfo(dir);
    assert.match(a.id, /^[0-9a-f]{16}$/);
    assert.equal(a.files['www/main.js'], 'ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb');
    assert.equal(buildInfo(dir).id, a.id, 'the same files, the same id');
    assert.notEqual(buildInfo(dir, { salt: 'x' }).id, a.id);
    put('sw.js', 'sw2');
    const b = buildInfo(dir);
    assert.notEqual(b.id, a.id, 'a new service worker is a new build');
    put('pkg/threads/googlenet_bg.wasm', 'w2');
    const memo = new Map();
    const c = buildInfo(dir, { memo });
    assert.notEqual(c.id, b.id, 'a new engine is a new build');
    assert.equal(buildInfo(dir, { memo }).id, c.id);
  } finally { fs.rmSync(dir, { recursive: true, force: true }); }
});

test('the manifest makes the page installable: name, standalone, icons 192 and 512 that exist', () => {
  const m = JSON.parse(fs.readFileSync(path.join(root, 'manifest.webmanifest'), 'utf8'));
  assert.ok(m.name && m.short_name && m.start_url && m.theme_color);
  assert.equal(m.display, 'standalone');
  for (const size of ['192x192', '512x512']) {
    const icon = m.icons.find((i) => i.sizes === size && i.type === 'image/png');
    assert.ok(icon, size);
    const png = fs.readFileSync(path.join(root, icon.src));
    assert.equal(png.readUInt32BE(16), Number(size.split('x')[0]), `${icon.src} width`);
    assert.equal(png.readUInt32BE(20), Number(size.split('x')[0]), `${icon.src} height`);
  }
  assert.match(fs.readFileSync(path.join(root, 'index.html'), 'utf8'), /<link rel="manifest" href="manifest.webmanifest">/);
});
