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

/** A class typed by the user: `"#285"`/`"285"`, an option text `"Egyptian cat (#285)"`, or a name. */
export function parseClass(labels, text) {
  const s = String(text).trim();
  const m = /^#?(\d+)$/.exec(s) || /\(#(\d+)\)\s*$/.exec(s);
  if (m) {
    const i = Number(m[1]);
    return i < labels.length ? i : null;
  }
  const found = findClasses(labels, s, 1);
  return found.length && findClasses(labels, s, 2).length === 1 ? found[0].index : exactClass(labels, s);
}

function exactClass(labels, s) {
  const q = s.toLowerCase();
  const i = labels.findIndex((l) => String(l).toLowerCase().split(',').some((n) => n.trim() === q));
  return i >= 0 ? i : null;
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
