// Folders of images for presenter mode: a dropped folder (the File and Directory Entries API,
// `DataTransferItem.webkitGetAsEntry()`) or a picked one (`<input webkitdirectory>`), read
// recursively, images only, in name order; and the step-through counter. Pure (the entries are
// passed in), tested with `node --test`.

const IMAGE = /\.(jpe?g|png|gif|webp|bmp|avif|ico|heic|heif|tiff?)$/i;

/** Whether a file name looks like an image (hidden files such as `._x.jpg` are not). */
export function isImageName(name) {
  return IMAGE.test(name) && !name.split('/').pop().startsWith('.');
}

/** "img2.jpg" before "img10.jpg"; case does not split the order. */
export const byName = (a, b) => a.path.localeCompare(b.path, 'en', { numeric: true, sensitivity: 'base' }) || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0);

/** All entries of a directory (readEntries answers in batches until an empty one). */
async function readAll(dir) {
  const reader = dir.createReader();
  const out = [];
  for (;;) {
    const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
    if (!batch.length) return out;
    out.push(...batch);
  }
}

/**
 * The image files under `entries` (FileSystemEntry: files and directories, as dropped), read
 * recursively, as `[{path, file}]` in name order. Unreadable entries are skipped.
 */
export async function imagesFromEntries(entries) {
  const found = [];
  async function visit(entry, prefix) {
    const path = `${prefix}${entry.name}`;
    if (entry.isDirectory) {
      let children = [];
      try { children = await readAll(entry); } catch { return; }
      for (const c of children) await visit(c, `${path}/`);
    } else if (entry.isFile && isImageName(entry.name)) {
      try { found.push({ path, file: await new Promise((resolve, reject) => entry.file(resolve, reject)) }); } catch { /* unreadable */ }
    }
  }
  for (const e of entries) if (e) await visit(e, '');
  return found.sort(byName);
}

/** Picked or dropped files (no entries): images only, by their folder path where known. */
export function imagesFromFiles(files) {
  return [...files].map((file) => ({ path: file.webkitRelativePath || file.name, file }))
    .filter((f) => isImageName(f.path) && (!f.file.type || f.file.type.startsWith('image/') || isImageName(f.file.name)))
    .sort(byName);
}

/** The next position when stepping through `n` items (wraps around; -1 before the first). */
export function step(i, n, delta = 1) {
  if (n <= 0) return -1;
  if (i < 0) return delta >= 0 ? 0 : n - 1;
  return (((i + delta) % n) + n) % n;
}

/** "3 / 12 · cat.jpg" (the file's own name, not its folder path). */
export function counterText(i, n, path) {
  if (n <= 0 || i < 0) return '';
  return `${i + 1} / ${n} · ${path.split('/').pop()}`;
}
