// Which backend to run, and why: pure logic, tested with `node --test`.

/**
 * @param {object} o
 * @param {'auto'|'webgpu'|'cpu'} o.requested  what the URL or the menu asked for
 * @param {boolean} o.hasGpu                    navigator.gpu exists
 * @param {{name: string, isFallback: boolean} | null} o.adapter  requestAdapter() result
 * @returns {{backend: 'webgpu'|'cpu', reason: string}}
 */
export function chooseBackend({ requested, hasGpu, adapter }) {
  if (requested === 'cpu') return { backend: 'cpu', reason: 'CPU chosen' };
  if (!hasGpu) return { backend: 'cpu', reason: 'WebGPU is not available in this browser (no navigator.gpu)' };
  if (!adapter) return { backend: 'cpu', reason: 'WebGPU found no GPU adapter' };
  if (adapter.isFallback && requested !== 'webgpu') {
    return {
      backend: 'cpu',
      reason: `the only WebGPU adapter is a software emulation (${adapter.name || 'fallback adapter'}), slower than the CPU path; add ?backend=webgpu to use it anyway`,
    };
  }
  return { backend: 'webgpu', reason: requested === 'webgpu' ? 'WebGPU chosen' : 'WebGPU adapter available' };
}

/** Adapter name from GPUAdapter.info (Chrome ≥ 114), with the fallback flag (Chrome ≥ 136 on info). */
export function describeAdapter(adapter) {
  if (!adapter) return null;
  const info = adapter.info || {};
  const parts = [info.vendor, info.architecture, info.device, info.description].filter(Boolean);
  const isFallback = Boolean(info.isFallbackAdapter ?? adapter.isFallbackAdapter);
  return { name: parts.join(' ') || 'unknown adapter', isFallback };
}
