// The build id of the web app and the list of files the service worker (sw.js) keeps for
// offline use, each with its SHA-256, written to build-id.json at the repository root:
//   node scripts/build-id.mjs            (scripts/build-web.sh runs it after a build)
// The id is a hash of every listed file and of sw.js itself, so any change to the page, the
// engines or the service worker is a new build: the page registers `sw.js?v=<id>`, the new
// service worker fetches and checks every file against this list before it replaces the old
// offline copy. scripts/serve.mjs computes the same answer live (edits are picked up without
// a build); a static host serves the file written here. Without it the page still works, with
// no offline copy.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Served files that belong to the app (relative to the root, `/` separators). */
const TOP = ['index.html', 'manifest.webmanifest'];
const KEEP = /\.(js|css|json|wasm|png|jpe?g|svg|webp)$/i;
const SKIP = /(\.test\.js|\.gz)$/i;

function walk(root, dir) {
  const abs = path.join(root, dir);
  if (!fs.existsSync(abs)) return [];
  return fs.readdirSync(abs, { withFileTypes: true }).flatMap((e) => {
    const rel = `${dir}/${e.name}`;
    if (e.isDirectory()) return walk(root, rel);
    return e.isFile() && KEEP.test(e.name) && !SKIP.test(e.name) ? [rel] : [];
  });
}

/** Every file of the app: the page, www/ (gallery included) and the engine builds under pkg/. */
export function appFiles(root = repoRoot) {
  return [...TOP.filter((f) => fs.existsSync(path.join(root, f))), ...walk(root, 'www'), ...walk(root, 'pkg')].sort();
}

/** SHA-256 of a file, hex; `memo` (path → {mtimeMs, size, hash}) skips files that did not change. */
export function hashFile(file, memo = null) {
  const st = fs.statSync(file);
  const known = memo?.get(file);
  if (known && known.mtimeMs === st.mtimeMs && known.size === st.size) return known.hash;
  const hash = crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
  memo?.set(file, { mtimeMs: st.mtimeMs, size: st.size, hash });
  return hash;
}

/**
 * `{ id, files: { path: sha256 } }`. `salt` only exists for tests that need "a new deploy"
 * without changing a file.
 */
export function buildInfo(root = repoRoot, { memo = null, salt = '' } = {}) {
  const files = Object.fromEntries(appFiles(root).map((f) => [f, hashFile(path.join(root, f), memo)]));
  const h = crypto.createHash('sha256');
  for (const [f, hash] of Object.entries(files)) h.update(`${f}\0${hash}\n`);
  const sw = path.join(root, 'sw.js');
  h.update(`sw.js\0${fs.existsSync(sw) ? hashFile(sw, memo) : ''}\n${salt}`);
  return { id: h.digest('hex').slice(0, 16), files };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const info = buildInfo(repoRoot);
  fs.writeFileSync(path.join(repoRoot, 'build-id.json'), `${JSON.stringify(info, null, 1)}\n`);
  console.log(`build-id.json: build ${info.id}, ${Object.keys(info.files).length} files`);
}
