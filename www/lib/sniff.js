// What a picked or dropped file is, from its first bytes (never its name): weights go to the
// model loader, anything else to the classifier (which says what it expected). Pure, tested
// with `node --test`.

/** How many leading bytes `sniff` needs. */
export const SNIFF_BYTES = 16;

/**
 * @param {Uint8Array} head  the file's first bytes (SNIFF_BYTES or all of a shorter file)
 * @returns {'safetensors'|'pytorch'|'image'|'unknown'}
 */
export function sniff(head) {
  const b = head;
  const at = (i, ...xs) => xs.every((x, k) => b[i + k] === x);
  const ascii = (i, s) => [...s].every((ch, k) => b[i + k] === ch.charCodeAt(0));
  if (b.length >= 9) {
    // safetensors: a little-endian u64 header length (small, non-zero), then the JSON header.
    const lo = b[0] | (b[1] << 8) | (b[2] << 16) | (b[3] * 2 ** 24);
    const hi = b[4] | b[5] | b[6] | b[7];
    if (hi === 0 && lo >= 2 && lo <= 100 * 1024 * 1024 && b[8] === 0x7b) return 'safetensors';
  }
  // torch.save: a zip archive (PyTorch ≥ 1.6) or a bare pickle (protocol 2–5).
  if (at(0, 0x50, 0x4b, 0x03, 0x04)) return 'pytorch';
  if (b[0] === 0x80 && b[1] >= 2 && b[1] <= 5) return 'pytorch';
  if (at(0, 0xff, 0xd8, 0xff) || at(0, 0x89, 0x50, 0x4e, 0x47) || ascii(0, 'GIF8') || ascii(0, 'BM')
    || (ascii(0, 'RIFF') && ascii(8, 'WEBP')) || ascii(4, 'ftyp') || at(0, 0x49, 0x49, 0x2a, 0x00)
    || at(0, 0x4d, 0x4d, 0x00, 0x2a) || at(0, 0x00, 0x00, 0x01, 0x00)) return 'image';
  return 'unknown';
}

/** Whether the name says "weights" (used only when the content says nothing). */
export function weightsByName(name) {
  return /\.(safetensors|pth|pt|bin|ckpt)$/i.test(String(name));
}

/**
 * Where a file goes: 'weights' (the model loader) or 'image' (the classifier).
 * @param {Uint8Array} head  its first bytes
 * @param {string} name  its name (only when the content is not recognised)
 */
export function route(head, name) {
  const kind = sniff(head);
  if (kind === 'safetensors' || kind === 'pytorch') return 'weights';
  if (kind === 'image') return 'image';
  return weightsByName(name) ? 'weights' : 'image';
}
