// Pure helpers for the explanation (Grad-CAM) view: finding a class by name, and saying in
// words where the evidence lies. Tested with `node --test`.

/** The short name of a label (`"Pembroke, Pembroke Welsh corgi"` → `"Pembroke"`). */
export function shortName(label) {
  return String(label).split(',')[0].trim();
}

/**
 * Classes whose label matches `query` (case-insensitive), best first: an exact name, then a name
 * that starts with the query, then a name containing it. At most `limit`.
 * @param {string[]} labels  the classifier's labels, in class order
 * @returns {{index: number, label: string}[]}
 */
export function findClasses(labels, query, limit = 12) {
  const q = String(query).trim().toLowerCase();
  if (!q) return [];
  const scored = [];
  labels.forEach((label, index) => {
    const names = String(label).toLowerCase().split(',').map((s) => s.trim());
    let rank = 3;
    for (const n of names) {
      if (n === q) rank = Math.min(rank, 0);
      else if (n.startsWith(q)) rank = Math.min(rank, 1);
      else if (n.includes(q)) rank = Math.min(rank, 2);
    }
    if (rank < 3) scored.push({ rank, index, label });
  });
  scored.sort((a, b) => a.rank - b.rank || a.index - b.index);
  return scored.slice(0, limit).map(({ index, label }) => ({ index, label }));
}

/**
 * A class typed by the user: `"#285"`/`"285"`, an option text `"Egyptian cat (#285)"`, or a
 * name. A name is looked up as the CLI does (`labels::find_class`): a class's first name
 * exactly, then in any case, then a synonym exactly, then in any case, each round only when the
 * one before found nothing; then a name that only one class contains. So `cardigan` is the
 * sweater and `Cardigan` the corgi. A round that finds several classes (`crane`: the bird and
 * the machine) is a choice for the user, never a silent pick.
 * @returns {{index: number} | {choices: {index: number, label: string}[]} | {none: true}}
 */
export function lookupClass(labels, text) {
  const s = String(text).trim();
  const m = /^#?(\d+)$/.exec(s) || /\(#(\d+)\)\s*$/.exec(s);
  if (m) {
    const i = Number(m[1]);
    return i < labels.length ? { index: i } : { none: true };
  }
  if (!s) return { none: true };
  const lower = s.toLowerCase();
  const names = labels.map((l) => String(l).split(',').map((n) => n.trim()));
  const rounds = [
    (n) => n[0] === s,
    (n) => n[0].toLowerCase() === lower,
    (n) => n.slice(1).some((x) => x === s),
    (n) => n.slice(1).some((x) => x.toLowerCase() === lower),
  ];
  for (const round of rounds) {
    const found = [];
    names.forEach((n, index) => { if (round(n)) found.push({ index, label: labels[index] }); });
    if (found.length === 1) return { index: found[0].index };
    if (found.length > 1) return { choices: found };
  }
  const partial = findClasses(labels, s, 9);
  if (partial.length === 1) return { index: partial[0].index };
  if (partial.length > 1) return { choices: partial.slice(0, 8) };
  return { none: true };
}

/** `lookupClass`'s index, or null when the text names no class or several. */
export function parseClass(labels, text) {
  const r = lookupClass(labels, text);
  return 'index' in r ? r.index : null;
}

/**
 * Where the evidence is, in words: the strongest cell's place in a 3×3 division of the image,
 * and how much of the map is lit (cells at half the maximum or more).
 * @param {number[][]} grid  rows top to bottom, non-negative
 */
export function describeEvidence(grid) {
  const h = grid.length, w = grid[0]?.length || 0;
  let max = 0, at = [0, 0], lit = 0;
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) if (grid[y][x] > max) { max = grid[y][x]; at = [y, x]; }
  if (!(max > 0)) return { max: 0, where: '', share: 0, text: 'no positive evidence in this block' };
  for (const row of grid) for (const v of row) if (v >= max / 2) lit++;
  const third = (i, n) => Math.min(2, Math.floor((3 * (i + 0.5)) / n));
  const rows = ['top', 'middle', 'bottom'], cols = ['left', 'centre', 'right'];
  const [r, c] = [third(at[0], h), third(at[1], w)];
  const where = r === 1 && c === 1 ? 'centre' : r === 1 ? `${cols[c]} middle` : c === 1 ? `${rows[r]} centre` : `${rows[r]} ${cols[c]}`;
  const share = lit / (h * w);
  return { max, where, share, text: `strongest at the ${where}; ${Math.round(share * 100)}% of the image at half strength or more` };
}
