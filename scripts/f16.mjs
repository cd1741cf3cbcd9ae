// usage: node scripts/f16.mjs IN.safetensors OUT.safetensors
// The page's default weights at half the download (scripts/lib/f16.mjs); written to a
// temporary file and renamed, so a failure never leaves a half-written OUT.
import fs from 'node:fs';
import path from 'node:path';
import { safetensorsToF16 } from './lib/f16.mjs';

const [from, to] = process.argv.slice(2);
if (!from || !to) { console.error('usage: node scripts/f16.mjs IN.safetensors OUT.safetensors'); process.exit(2); }
if (path.resolve(from) === path.resolve(to)) { console.error('f16.mjs: the output would overwrite its input'); process.exit(2); }
try {
  const out = safetensorsToF16(fs.readFileSync(from));
  const tmp = `${to}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, out);
  fs.renameSync(tmp, to);
  console.error(`wrote ${to} (F16, ${(out.length / 1e6).toFixed(1)} MB)`);
} catch (e) {
  console.error(`f16.mjs: ${from}: ${e.message}`);
  process.exit(1);
}
