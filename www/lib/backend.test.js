import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chooseEngine, cpuEngine, decide, describeAdapter, describeMeasurement, engineLabel, hasRelaxedSimd, measureKey, median, MAX_THREADS } from './backend.js';

const gpu = { name: 'NVIDIA RTX', isFallback: false };
const soft = { name: 'google swiftshader', isFallback: true };
const page = { hasGpu: true, isolated: true, cores: 8 };

test('the CPU engine is threaded only on a cross-origin isolated page', () => {
  assert.deepEqual(
    [cpuEngine({ isolated: true, cores: 8 }).engine, cpuEngine({ isolated: true, cores: 8 }).threads],
    ['threads-relaxed', 8],
  );
  const plain = cpuEngine({ isolated: false, cores: 8 });
  assert.deepEqual([plain.engine, plain.threads], ['cpu', 1]);
  assert.match(plain.why, /not cross-origin isolated/);
  assert.equal(cpuEngine({ isolated: true, cores: 8, threads: 2 }).threads, 2, '?threads=2');
  assert.equal(cpuEngine({ isolated: true, cores: 64 }).threads, MAX_THREADS);
  assert.deepEqual([cpuEngine({ isolated: true, cores: undefined }).engine, cpuEngine({ isolated: true, cores: undefined }).threads], ['cpu', 1], 'no hardwareConcurrency: the one-thread build');
  assert.deepEqual([cpuEngine({ isolated: true, cores: 8, threads: 1 }).engine, cpuEngine({ isolated: true, cores: 8, threads: 1 }).why], ['cpu', 'one thread (?threads=1): the one-thread build']);
  assert.equal(cpuEngine({ isolated: true, cores: 4, threads: 'x' }).threads, 4, 'a bad ?threads is ignored');
});

test('auto starts on the CPU and asks for a measurement when an adapter exists', () => {
  const c = chooseEngine({ requested: 'auto', adapter: gpu, ...page });
  assert.deepEqual([c.engine, c.threads, c.backend, c.probe, c.fallback], ['threads-relaxed', 8, 'cpu', true, false]);
  assert.match(c.reason, /measured against it/);
  // Not even a software adapter is ruled out by name: it is measured like any other.
  assert.equal(chooseEngine({ requested: 'auto', adapter: soft, ...page }).probe, true);
});

test('a remembered race decides auto, for the same CPU engine only', () => {
  const cpuLabel = engineLabel(cpuEngine({ isolated: true, cores: 8 }));
  const gpuWon = decide({ cpuMs: 120, gpuMs: 41.2, cpuLabel });
  const c = chooseEngine({ requested: 'auto', adapter: gpu, ...page, measured: gpuWon });
  assert.deepEqual([c.engine, c.probe], ['webgpu', false]);
  assert.equal(c.reason, 'measured on this machine: CPU, 8 threads: 120 ms; WebGPU: 41 ms');
  const cpuWon = decide({ cpuMs: 120, gpuMs: 2400, cpuLabel });
  assert.deepEqual([chooseEngine({ requested: 'auto', adapter: soft, ...page, measured: cpuWon }).engine], ['threads-relaxed']);
  // Measured against 8 threads; this page runs one: measure again.
  const other = chooseEngine({ requested: 'auto', adapter: gpu, ...page, isolated: false, measured: gpuWon });
  assert.deepEqual([other.engine, other.probe], ['cpu', true]);
});

test('WebGPU wins only by being faster', () => {
  assert.equal(decide({ cpuMs: 100, gpuMs: 99, cpuLabel: 'CPU, 2 threads' }).winner, 'webgpu');
  assert.equal(decide({ cpuMs: 100, gpuMs: 100, cpuLabel: 'CPU, 2 threads' }).winner, 'cpu');
  assert.equal(decide({ cpuMs: 100, gpuMs: null, cpuLabel: 'CPU, 2 threads', note: 'failed to start' }).winner, 'cpu');
  assert.equal(decide({ cpuMs: 100, gpuMs: NaN, cpuLabel: 'CPU, 2 threads' }).winner, 'cpu');
  assert.equal(
    describeMeasurement(decide({ cpuMs: 100, gpuMs: null, cpuLabel: 'CPU, 1 thread', note: 'WebGPU failed to start' })),
    'measured on this machine: CPU, 1 thread: 100 ms; WebGPU: WebGPU failed to start',
  );
});

test('explicit choices and missing WebGPU', () => {
  const cpu = chooseEngine({ requested: 'cpu', adapter: gpu, ...page });
  assert.deepEqual([cpu.engine, cpu.probe, cpu.fallback], ['threads-relaxed', false, false]);
  assert.match(cpu.reason, /^CPU chosen; 8 threads/);
  assert.equal(chooseEngine({ requested: 'webgpu', adapter: soft, ...page }).engine, 'webgpu');
  const none = chooseEngine({ requested: 'auto', adapter: null, ...page, hasGpu: false });
  assert.deepEqual([none.engine, none.fallback, none.probe], ['threads-relaxed', true, false]);
  assert.match(none.reason, /navigator.gpu/);
  const noAdapter = chooseEngine({ requested: 'webgpu', adapter: null, ...page });
  assert.deepEqual([noAdapter.backend, /no GPU adapter/.test(noAdapter.reason)], ['cpu', true]);
});

test('labels, keys and medians', () => {
  assert.equal(engineLabel({ engine: 'cpu', threads: 1 }), 'CPU, 1 thread');
  assert.equal(engineLabel({ engine: 'webgpu', threads: 1 }), 'WebGPU');
  assert.equal(measureKey('NVIDIA RTX', { engine: 'threads', threads: 4 }), 'NVIDIA RTX|CPU, 4 threads');
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 2, 3]), 2.5);
});

test('adapter info is read from GPUAdapter.info', () => {
  const d = describeAdapter({ info: { vendor: 'google', architecture: 'swiftshader', isFallbackAdapter: true } });
  assert.deepEqual(d, { name: 'google swiftshader', isFallback: true });
  assert.equal(describeAdapter(null), null);
});

test('without relaxed SIMD the page runs the plain-SIMD threaded engine on every core and says why', () => {
  const c = cpuEngine({ isolated: true, cores: 8, relaxed: false });
  assert.deepEqual([c.engine, c.threads], ['threads', 8]);
  assert.match(c.why, /^8 threads on 8 logical cores; plain SIMD: this browser lacks WebAssembly relaxed SIMD/);
  assert.equal(chooseEngine({ requested: 'cpu', hasGpu: false, isolated: true, cores: 8, relaxed: false }).engine, 'threads');
  const r = cpuEngine({ isolated: true, cores: 8, relaxed: true });
  assert.deepEqual([r.engine, r.why], ['threads-relaxed', '8 threads on 8 logical cores, relaxed SIMD']);
  // One thread or no isolation: the one-thread build either way.
  assert.equal(cpuEngine({ isolated: true, cores: 8, threads: 1, relaxed: false }).engine, 'cpu');
  assert.equal(cpuEngine({ isolated: false, cores: 8, relaxed: true }).engine, 'cpu');
  // Measurements are remembered per engine label ("CPU, 8 threads"): the same for both builds.
  assert.equal(engineLabel(c), engineLabel(r));
});

test('the relaxed SIMD probe is a module a relaxed-SIMD engine accepts, and nothing else', () => {
  const seen = [];
  const fake = (accept) => ({ validate: (bytes) => { seen.push(bytes); return accept; } });
  assert.equal(hasRelaxedSimd(fake(true)), true);
  assert.equal(hasRelaxedSimd(fake(false)), false);
  assert.equal(hasRelaxedSimd({ validate: () => { throw new Error('no'); } }), false);
  assert.equal(hasRelaxedSimd(undefined), false);
  // The probe's code: i32.const 1, i8x16.splat, i32.const 2, i8x16.splat, i8x16.relaxed_swizzle
  // (0xfd 0x100), end. (Chromium's acceptance of it is what the browser tests' threaded engine shows.)
  assert.deepEqual([...seen[0].slice(-12)], [65, 1, 253, 15, 65, 2, 253, 15, 253, 128, 2, 11]);
});
