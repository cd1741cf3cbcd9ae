// The app icons (www/icons/icon-192.png, icon-512.png; committed): an Inception block drawn
// as its four branches (the page's branch colours) over the concatenation, on a dark ground.
// Full-bleed and inside the central 80 %, so one file serves as `any` and `maskable`.
//   node scripts/make-icons.mjs
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { repoRoot } from './build-id.mjs';

const BG = [32, 33, 36], WHITE = [255, 255, 255];
const BRANCHES = [[66, 133, 244], [234, 67, 53], [251, 188, 4], [52, 168, 83]];

/** Shapes in a 100×100 box: rounded rectangles [x, y, w, h, r, colour], last on top. */
const SHAPES = [
  [18, 70, 64, 12, 4, WHITE],
  ...[[20, 34], [35, 22], [50, 28], [65, 40]].map(([x, y], i) => [x, y, 13, 66 - y, 4, BRANCHES[i]]),
  ...[0, 1, 2, 3].map((i) => [20 + 15 * i + 2.5, 16, 8, 8, 4, WHITE]),
];

function inside([x, y, w, h, r], px, py) {
  if (px < x || px > x + w || py < y || py > y + h) return false;
  const cx = Math.min(Math.max(px, x + r), x + w - r), cy = Math.min(Math.max(py, y + r), y + h - r);
  return (px - cx) ** 2 + (py - cy) ** 2 <= r * r;
}

function draw(size) {
  const ss = 4, raw = Buffer.alloc(size * (size * 3 + 1));
  for (let y = 0; y < size; y++) {
    raw[y * (size * 3 + 1)] = 0; // filter: none
    for (let x = 0; x < size; x++) {
      const acc = [0, 0, 0];
      for (let sy = 0; sy < ss; sy++) for (let sx = 0; sx < ss; sx++) {
        const px = ((x + (sx + 0.5) / ss) / size) * 100, py = ((y + (sy + 0.5) / ss) / size) * 100;
        let c = BG;
        for (const s of SHAPES) if (inside(s, px, py)) c = s[5];
        for (let k = 0; k < 3; k++) acc[k] += c[k];
      }
      for (let k = 0; k < 3; k++) raw[y * (size * 3 + 1) + 1 + x * 3 + k] = Math.round(acc[k] / (ss * ss));
    }
  }
  const chunk = (type, data) => {
    const len = Buffer.alloc(4); len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type), data]);
    const crc = Buffer.alloc(4); crc.writeUInt32BE(zlib.crc32(td));
    return Buffer.concat([len, td, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(size, 0); ihdr.writeUInt32BE(size, 4);
  ihdr[8] = 8; ihdr[9] = 2; // 8-bit RGB
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(raw, { level: 9 })), chunk('IEND', Buffer.alloc(0))]);
}

const dir = path.join(repoRoot, 'www/icons');
fs.mkdirSync(dir, { recursive: true });
for (const size of [192, 512]) {
  fs.writeFileSync(path.join(dir, `icon-${size}.png`), draw(size));
  console.log(`www/icons/icon-${size}.png`);
}
