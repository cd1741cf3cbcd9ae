import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chooseBackend, describeAdapter } from './backend.js';

const gpu = { name: 'NVIDIA RTX', isFallback: false };
const soft = { name: 'Google SwiftShader', isFallback: true };

test('a real adapter runs WebGPU', () => {
  assert.equal(chooseBackend({ requested: 'auto', hasGpu: true, adapter: gpu }).backend, 'webgpu');
});

test('missing WebGPU or adapter falls back to the CPU with a reason', () => {
  const a = chooseBackend({ requested: 'auto', hasGpu: false, adapter: null });
  assert.deepEqual([a.backend, /navigator.gpu/.test(a.reason)], ['cpu', true]);
  const b = chooseBackend({ requested: 'webgpu', hasGpu: true, adapter: null });
  assert.deepEqual([b.backend, /no GPU adapter/.test(b.reason)], ['cpu', true]);
});

test('a software adapter is used only when asked for', () => {
  const auto = chooseBackend({ requested: 'auto', hasGpu: true, adapter: soft });
  assert.equal(auto.backend, 'cpu');
  assert.match(auto.reason, /SwiftShader/);
  assert.equal(chooseBackend({ requested: 'webgpu', hasGpu: true, adapter: soft }).backend, 'webgpu');
  assert.equal(chooseBackend({ requested: 'cpu', hasGpu: true, adapter: gpu }).backend, 'cpu');
});

test('adapter info is read from GPUAdapter.info', () => {
  const d = describeAdapter({ info: { vendor: 'google', architecture: 'swiftshader', isFallbackAdapter: true } });
  assert.deepEqual(d, { name: 'google swiftshader', isFallback: true });
  assert.equal(describeAdapter(null), null);
});
