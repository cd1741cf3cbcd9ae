// Static server for the demo on 127.0.0.1: serves the repository root, precompressed .gz
// files when the browser accepts gzip, and /weights/* from the shared data folder (or from
// ./weights/ where `googlenet fetch-weights` and build-web.sh put them; `X.f16.safetensors`
// falls back to `X.safetensors`).
// usage: node scripts/serve.mjs [PORT]
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildInfo } from './build-id.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const shared = path.resolve(process.env.GOOGLENET_SHARED || path.join(root, '..', 'shared'));
const port = Number(process.argv[2] || process.env.PORT || 8080);
const types = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.mjs': 'text/javascript', '.css': 'text/css',
  '.wasm': 'application/wasm', '.json': 'application/json', '.jpg': 'image/jpeg', '.jpeg': 'image/jpeg',
  '.png': 'image/png', '.txt': 'text/plain; charset=utf-8', '.safetensors': 'application/octet-stream',
  '.onnx': 'application/octet-stream', '.webmanifest': 'application/manifest+json',
};
// build-id.json is computed live (unchanged files are not hashed again), so an edit is a new
// build for the service worker without running scripts/build-id.mjs. Test hook:
// GOOGLENET_BUILD_SALT changes the id without changing a file (a "new deploy").
const hashes = new Map();

// Test hook: GOOGLENET_SERVE_STATS=1 counts the bodies sent per path, read at /__stats.
const stats = process.env.GOOGLENET_SERVE_STATS === '1' ? new Map() : null;
function sent(pathname, bytes) {
  if (!stats) return;
  const s = stats.get(pathname) || { bodies: 0, bytes: 0 };
  s.bodies += 1;
  s.bytes += bytes;
  stats.set(pathname, s);
}

function resolve(urlPath) {
  if (urlPath.startsWith('/weights/')) {
    const name = path.basename(urlPath);
    // Half-size weights (`googlenet convert --dtype f16`, made by build-web.sh) when present,
    // else the float32 file they were made from (the page reads either).
    const half = /^(.*)\.f16\.safetensors$/.exec(name);
    if (half) {
      return [path.join(root, 'weights', name), path.join(shared, 'weights', name)].find((p) => fs.existsSync(p))
        || resolve(`/weights/${half[1]}.safetensors`);
    }
    const candidates = name === 'synset_words.txt'
      ? [path.join(shared, 'data', name), path.join(root, 'weights', name)]
      : name === 'bvlc_googlenet.onnx'
        ? [path.join(shared, 'bench', name)]
        : [path.join(shared, 'weights', name), path.join(root, 'weights', name),
          // Without the shared data, the page's default weights are what
          // `googlenet fetch-weights` converted (torchvision's; the file says which variant).
          ...(name === 'bvlc_googlenet.safetensors' ? [path.join(root, 'weights', 'googlenet_torchvision.safetensors')] : [])];
    return candidates.find((p) => fs.existsSync(p));
  }
  const p = path.join(root, path.normalize(urlPath === '/' ? '/index.html' : urlPath));
  return p.startsWith(root) ? p : null;
}

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, 'http://localhost');
  // Test hooks: `?delay=MS` on any URL holds the answer back (a slow network for the tests);
// `?stall=BYTES` (below) sends the start of a file and then stalls.
  const delay = Math.min(Number(url.searchParams.get('delay')) || 0, 60_000);
  if (delay) await new Promise((r) => setTimeout(r, delay));
  if (stats && url.pathname === '/__stats') {
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(JSON.stringify(Object.fromEntries(stats)));
    return;
  }
  if (url.pathname === '/build-id.json') {
    const body = JSON.stringify(buildInfo(root, { memo: hashes, salt: process.env.GOOGLENET_BUILD_SALT || '' }));
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store', 'cross-origin-resource-policy': 'same-origin' });
    res.end(body);
    return;
  }
  const file = resolve(decodeURIComponent(url.pathname));
  if (!file || !fs.existsSync(file) || fs.statSync(file).isDirectory()) {
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end(`not found: ${url.pathname}`);
    return;
  }
  const headers = {
    'content-type': types[path.extname(file)] || 'application/octet-stream',
    'cache-control': 'no-cache',
  };
  // Cross-origin isolation (SharedArrayBuffer): the threaded CPU engine, and ONNX Runtime Web's
  // threads in the benchmark. Test hook: a page asked for with `?isolate=0` gets none, as on a
  // static host that cannot send these headers (the page then runs the one-thread engine).
  if (url.searchParams.get('isolate') !== '0') {
    headers['cross-origin-opener-policy'] = 'same-origin';
    headers['cross-origin-embedder-policy'] = 'require-corp';
  }
  let body = file;
  // A .gz older than its source is stale (an edit after the build): serve the source. (.gz
  // files are build outputs, never committed, so a fresh clone has none.)
  const gz = `${file}.gz`;
  if (/\bgzip\b/.test(req.headers['accept-encoding'] || '') && fs.existsSync(gz) && fs.statSync(gz).mtimeMs >= fs.statSync(file).mtimeMs) {
    body = gz;
    headers['content-encoding'] = 'gzip';
  }
  // Validators: a second fetch of an unchanged file (the service worker's precache after the
  // page's own first load, `cache: 'no-cache'`) is a 304, so on a first visit every file
  // crosses the wire once.
  const st = fs.statSync(body);
  headers.etag = `"${st.size.toString(36)}-${Math.floor(st.mtimeMs).toString(36)}${body === gz ? '-gz' : ''}"`;
  headers['last-modified'] = st.mtime.toUTCString();
  headers.vary = 'accept-encoding';
  const tags = String(req.headers['if-none-match'] || '').split(',').map((t) => t.trim().replace(/^W\//, ''));
  if (url.searchParams.get('stall') === null && tags.includes(headers.etag)) {
    delete headers['content-type'];
    res.writeHead(304, headers);
    return res.end();
  }
  headers['content-length'] = st.size;
  sent(url.pathname, req.method === 'HEAD' ? 0 : st.size);
  res.writeHead(200, headers);
  if (req.method === 'HEAD') return res.end();
  // Test hook: `?stall=BYTES` sends that many bytes, then nothing more (a stalled download;
  // the connection stays open until the client gives up).
  const stall = url.searchParams.get('stall');
  if (stall !== null) {
    const n = Math.max(0, Number(stall) || 0);
    fs.createReadStream(body, { start: 0, end: Math.max(0, n - 1) }).on('data', (d) => { if (n) res.write(d); });
    req.on('close', () => res.destroy());
    return;
  }
  fs.createReadStream(body).pipe(res);
});
server.listen(port, '127.0.0.1', () => console.log(`GoogLeNet demo on http://127.0.0.1:${port}/`));
