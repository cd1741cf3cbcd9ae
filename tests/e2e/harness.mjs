// Shared by the browser tests, screenshots and the browser benchmark: start the demo server,
// launch Debian's Chromium headless through playwright-core in a fresh profile.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const shared = path.resolve(process.env.GOOGLENET_SHARED || path.join(root, '..', 'shared'));

export function haveShared() {
  const ok = fs.existsSync(path.join(shared, 'weights/bvlc_googlenet.safetensors'));
  if (!ok && process.env.CI === 'true') throw new Error(`CI=true but the shared data is missing at ${shared}`);
  return ok;
}

export async function startServer() {
  const port = 20000 + Math.floor(Math.random() * 20000);
  const proc = spawn(process.execPath, [path.join(root, 'scripts/serve.mjs'), String(port)], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((resolve, reject) => {
    proc.stdout.on('data', (d) => { if (String(d).includes('http://')) resolve(); });
    proc.on('exit', (code) => reject(new Error(`server exited with ${code}`)));
  });
  return { url: `http://127.0.0.1:${port}/`, close: () => proc.kill() };
}

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

/** @param {{webgpu?: boolean}} opts */
export async function launch({ webgpu = false } = {}) {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'googlenet-chrome-'));
  const args = ['--no-sandbox', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'];
  if (webgpu) args.push('--enable-unsafe-webgpu');
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true, args, viewport: { width: 1280, height: 720 },
  });
  return {
    context,
    close: async () => { await context.close(); fs.rmSync(profile, { recursive: true, force: true }); },
  };
}
