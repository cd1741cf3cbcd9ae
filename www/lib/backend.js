// Which engine to run, and why: pure logic, tested with `node --test`.
//
// Four builds of the model (scripts/build-web.sh), the worker loads one:
//   threads-relaxed  the CPU engine on Web Worker threads, its GEMM with WebAssembly relaxed
//                    SIMD's fused multiply-add (needs a cross-origin isolated page and a
//                    browser with relaxed SIMD: Chrome, Edge)
//   threads          the same with plain SIMD (cross-origin isolated, any other browser)
//   cpu              the CPU engine on one thread (any page)
//   webgpu           burn's wgpu backend
// "auto" starts on the CPU engine (small, starts fast) and, where a WebGPU adapter exists,
// measures it against the CPU after the first result; the faster one is remembered per adapter.

/** Most threads the CPU engine starts (more than the cores only adds contention). */
export const MAX_THREADS = 16;

/** The CPU engine this page can run: threaded where memory can be shared with workers. */
export function cpuEngine({ isolated, cores, threads = null, relaxed = true }) {
  const logical = Math.max(1, Math.floor(Number(cores) || 1));
  if (!isolated) {
    return {
      engine: 'cpu', threads: 1,
      why: 'one thread: the page is not cross-origin isolated (its server sends no COOP/COEP headers), so it cannot share memory with worker threads',
    };
  }
  const asked = Math.floor(Number(threads));
  const n = Math.min(MAX_THREADS, asked >= 1 ? asked : logical);
  // On one thread the one-thread build is faster: the threaded one hands every parallel
  // operation to a pool worker and waits, and its allocator locks.
  if (n === 1) return { engine: 'cpu', threads: 1, why: `one thread (${asked >= 1 ? '?threads=1' : 'one logical core'}): the one-thread build` };
  const on = `${n} thread${n === 1 ? '' : 's'} on ${logical} logical core${logical === 1 ? '' : 's'}`;
  if (!relaxed) return { engine: 'threads', threads: n, why: `${on}; plain SIMD: this browser lacks WebAssembly relaxed SIMD (fused multiply-add; current Chrome and Edge have it)` };
  return { engine: 'threads-relaxed', threads: n, why: `${on}, relaxed SIMD` };
}

/** "CPU, 4 threads", "CPU, 1 thread" or "WebGPU". */
export function engineLabel({ engine, threads }) {
  if (engine === 'webgpu') return 'WebGPU';
  return `CPU, ${threads} thread${threads === 1 ? '' : 's'}`;
}

/** The key a measurement is remembered under: the adapter and the CPU engine it was raced against. */
export function measureKey(adapterName, cpu) {
  return `${adapterName}|${engineLabel(cpu)}`;
}

/** What a measurement says, e.g. "CPU, 8 threads: 41 ms; WebGPU: 95 ms on this machine". */
export function describeMeasurement(m) {
  const gpu = m.gpuMs == null ? `WebGPU: ${m.note || 'did not run'}` : `WebGPU: ${Math.round(m.gpuMs)} ms`;
  return `measured on this machine: ${m.cpuLabel}: ${Math.round(m.cpuMs)} ms; ${gpu}`;
}

/**
 * The race's outcome: WebGPU wins only by being faster, measured. A software adapter or a
 * slow integrated GPU loses to the threaded CPU engine this way, with no list of names.
 */
export function decide({ cpuMs, gpuMs, cpuLabel, note = '' }) {
  const winner = gpuMs != null && Number.isFinite(gpuMs) && gpuMs < cpuMs ? 'webgpu' : 'cpu';
  return { winner, cpuMs, gpuMs: gpuMs ?? null, cpuLabel, note };
}

/**
 * @param {object} o
 * @param {'auto'|'webgpu'|'cpu'} o.requested  what the URL or the menu asked for
 * @param {boolean} o.hasGpu                    navigator.gpu exists
 * @param {{name: string, isFallback: boolean} | null} o.adapter  requestAdapter() result
 * @param {boolean} o.isolated                  crossOriginIsolated (SharedArrayBuffer usable)
 * @param {number} o.cores                      navigator.hardwareConcurrency
 * @param {number|null} [o.threads]             ?threads=N
 * @param {object|null} [o.measured]            the remembered race for this adapter (see decide)
 * @returns {{engine: string, threads: number, backend: 'webgpu'|'cpu', cpu: object, reason: string, fallback: boolean, probe: boolean}}
 */
export function chooseEngine({ requested, hasGpu, adapter, isolated, cores, threads = null, relaxed = true, measured = null }) {
  const cpu = cpuEngine({ isolated, cores, threads, relaxed });
  const onCpu = (reason, { fallback = false, probe = false } = {}) => ({
    engine: cpu.engine, threads: cpu.threads, backend: 'cpu', cpu, reason: `${reason}; ${cpu.why}`, fallback, probe,
  });
  const onGpu = (reason) => ({ engine: 'webgpu', threads: 1, backend: 'webgpu', cpu, reason, fallback: false, probe: false });
  if (requested === 'cpu') return onCpu('CPU chosen');
  if (!hasGpu) return onCpu('WebGPU is not available in this browser (no navigator.gpu)', { fallback: true });
  if (!adapter) return onCpu('WebGPU found no GPU adapter', { fallback: true });
  if (requested === 'webgpu') return onGpu('WebGPU chosen');
  if (measured && measured.cpuLabel === engineLabel(cpu)) {
    return measured.winner === 'webgpu' ? onGpu(describeMeasurement(measured)) : onCpu(describeMeasurement(measured));
  }
  return onCpu(`CPU first; WebGPU (${adapter.name}) is measured against it after the first result`, { probe: true });
}

/** Adapter name from GPUAdapter.info (Chrome ≥ 114), with the fallback flag (Chrome ≥ 136 on info). */
export function describeAdapter(adapter) {
  if (!adapter) return null;
  const info = adapter.info || {};
  const parts = [info.vendor, info.architecture, info.device, info.description].filter(Boolean);
  const isFallback = Boolean(info.isFallbackAdapter ?? adapter.isFallbackAdapter);
  return { name: parts.join(' ') || 'unknown adapter', isFallback };
}

/** Median of a non-empty list of timings. */
export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * Whether this browser validates WebAssembly relaxed SIMD: a one-function module that runs
 * `i8x16.relaxed_swizzle` (the probe wasm-feature-detect uses).
 */
export function hasRelaxedSimd(wasm = globalThis.WebAssembly) {
  const probe = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 15, 1, 13, 0, 65, 1, 253, 15, 65, 2, 253, 15, 253, 128, 2, 11]);
  try { return Boolean(wasm?.validate(probe)); } catch { return false; }
}
