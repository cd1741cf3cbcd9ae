import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WorkerClient, Req, Kind, reply, replyError, restartBudget } from './protocol.js';

/** A fake worker: answers with `respond(msg)` (a value, an Error, or undefined for silence). */
function fakeWorker(respond, log) {
  const w = {
    terminated: false,
    postMessage(msg) {
      log.push(msg.type);
      queueMicrotask(() => {
        if (w.terminated) return;
        const r = respond(msg);
        if (r === undefined) return;
        w.onmessage({ data: r instanceof Error ? replyError(msg.rid, r) : reply(msg.rid, r) });
      });
    },
    terminate() { w.terminated = true; },
  };
  return w;
}

function fakeTimers() {
  const timers = new Map();
  let next = 1;
  return {
    setTimeout(f, ms) { timers.set(next, { f, ms }); return next++; },
    clearTimeout(id) { timers.delete(id); },
    fireAll() { for (const [id, t] of [...timers]) { timers.delete(id); t.f(); } },
    count: () => timers.size,
  };
}

test('every request gets its own reply; errors keep their kind', async () => {
  const log = [];
  const client = new WorkerClient(() => fakeWorker((m) => {
    if (m.type === Req.CLASSIFY) return Object.assign(new Error('cannot use this image: empty'), { kind: Kind.INPUT });
    return { echo: m.type };
  }, log), { timers: fakeTimers() });
  assert.deepEqual(await client.start({}), { echo: Req.INIT });
  assert.deepEqual(await client.request(Req.BLOCK, { index: 1 }), { echo: Req.BLOCK });
  await assert.rejects(client.request(Req.CLASSIFY, {}), (e) => e.kind === Kind.INPUT && /empty/.test(e.message) && e.request === Req.CLASSIFY);
});

test('a wasm trap is a crash; anything else without a kind is internal', () => {
  assert.equal(replyError(1, new WebAssembly.RuntimeError('unreachable')).error.kind, Kind.CRASH);
  assert.equal(replyError(1, new TypeError('x is null')).error.kind, Kind.INTERNAL);
  assert.equal(replyError(1, Object.assign(new Error('lost'), { kind: Kind.DEVICE })).error.kind, Kind.DEVICE);
});

test('a silent worker times out, is terminated, and the caller hears why', async () => {
  const timers = fakeTimers();
  const log = [];
  let worker;
  let failures = 0;
  const client = new WorkerClient(() => (worker = fakeWorker((m) => (m.type === Req.INIT ? {} : undefined), log)), { timers, onFailure: () => failures++ });
  await client.start({});
  const p = client.request(Req.FT_STEP);
  await new Promise((r) => setTimeout(r, 5));
  timers.fireAll();
  await assert.rejects(p, (e) => e.kind === Kind.TIMEOUT);
  assert.equal(worker.terminated, true);
  assert.equal(failures, 0, 'the waiting request carried the failure');
  assert.equal(timers.count(), 0);
});

test('a worker whose script fails to load fails its init, and later failures reach onFailure', async () => {
  const failures = [];
  let worker;
  const client = new WorkerClient(() => (worker = fakeWorker(() => undefined, [])), { timers: fakeTimers(), onFailure: (e) => failures.push(e) });
  const started = client.start({});
  worker.onerror({ message: '' });
  await assert.rejects(started, (e) => e.kind === Kind.CRASH && /could not be loaded/.test(e.message));
  assert.equal(failures.length, 0);
});

test('after a restart the data-set edits are replayed before new requests, in order', async () => {
  const logs = [];
  const client = new WorkerClient(() => { const log = []; logs.push(log); return fakeWorker((m) => (m.type === Req.FT_ADD_CLASS ? 7 : {}), log); }, { timers: fakeTimers() });
  await client.start({});
  assert.equal(await client.request(Req.FT_ADD_CLASS, { name: 'cats' }), 7);
  await client.request(Req.FT_ADD_IMAGE, { id: 7, bytes: new Uint8Array([1, 2, 3]).buffer });
  await client.request(Req.CLASSIFY, {});
  const pending = client.request(Req.FT_STEP);
  await client.start({});
  await assert.rejects(pending, (e) => e.kind === Kind.RESTART);
  await client.request(Req.CLASSIFY, {});
  assert.deepEqual(logs[1], [Req.INIT, Req.FT_ADD_CLASS, Req.FT_ADD_IMAGE, Req.CLASSIFY]);
  // Replays are not journalled twice.
  await client.start({});
  assert.deepEqual(logs[2], [Req.INIT, Req.FT_ADD_CLASS, Req.FT_ADD_IMAGE]);
});

test('restarts are bounded until a request succeeds again', () => {
  const budget = restartBudget(3);
  assert.deepEqual([budget.allow(), budget.allow(), budget.allow(), budget.allow()], [true, true, true, false]);
  budget.succeeded();
  assert.equal(budget.allow(), true);
});

test('the time limit counts from when the worker starts the request', async () => {
  const timers = fakeTimers();
  let worker;
  const client = new WorkerClient(() => (worker = fakeWorker((m) => (m.type === Req.INIT ? {} : undefined), [])), { timers });
  await client.start({});
  const p = client.request(Req.CLASSIFY, {});
  const [rid] = client.pending.keys();
  worker.onmessage({ data: { event: true, type: 'started', rid } });
  assert.equal(timers.count(), 1, 'one timer, restarted');
  timers.fireAll();
  await assert.rejects(p, (e) => e.kind === Kind.TIMEOUT && e.generation === 1);
});

test('errors carry the worker generation they came from', async () => {
  const client = new WorkerClient(() => fakeWorker((m) => (m.type === Req.INIT ? {} : Object.assign(new Error('x'), { kind: Kind.INPUT })), []), { timers: fakeTimers() });
  await client.start({});
  await assert.rejects(client.request(Req.CLASSIFY), (e) => e.generation === 1);
  await client.start({});
  await assert.rejects(client.request(Req.CLASSIFY), (e) => e.generation === 2);
});

test('requests made before the first start wait for it', async () => {
  const log = [];
  const client = new WorkerClient(() => fakeWorker((m) => ({ echo: m.type }), log), { timers: fakeTimers() });
  const early = client.request(Req.FT_ADD_CLASS, { name: 'a' });
  await client.start({});
  assert.deepEqual(await early, { echo: Req.FT_ADD_CLASS });
  assert.deepEqual(log, [Req.INIT, Req.FT_ADD_CLASS]);
});

test('triage: one answer to "whose move is this error?" for every view', async () => {
  const { triage, RequestError, Kind } = await import('./protocol.js');
  const { Stale } = await import('./generation.js');
  assert.equal(triage(new RequestError('bad file', Kind.INPUT, 'classify')), 'show');
  assert.equal(triage(new RequestError('bug', Kind.INTERNAL, 'classify')), 'show');
  assert.equal(triage(new RequestError('restarted', Kind.RESTART, 'classify')), 'cancelled');
  assert.equal(triage(new Stale('result')), 'cancelled');
  for (const k of [Kind.DEVICE, Kind.CRASH, Kind.TIMEOUT]) assert.equal(triage(new RequestError('gone', k, 'classify')), 'recover', k);
  assert.equal(triage(new TypeError('x is undefined')), 'show', 'a bug in the page is shown, never a restart');
});

test('the error kinds the Rust library sends are the ones the page knows (src/error.rs ErrorKind)', async () => {
  const fs = await import('node:fs');
  const { Kind } = await import('./protocol.js');
  const src = fs.readFileSync(new URL('../../src/error.rs', import.meta.url), 'utf8');
  const body = /pub enum ErrorKind\s*\{([^}]*)\}/.exec(src);
  assert.ok(body, 'ErrorKind is in src/error.rs');
  const rust = body[1].split('\n').map((l) => l.replace(/\/\/.*$/, '').trim().replace(/,$/, '')).filter(Boolean).map((v) => v.toLowerCase());
  assert.ok(rust.length >= 3, `variants: ${rust}`);
  for (const v of rust) assert.ok(Object.values(Kind).includes(v), `the Rust kind "${v}" is a Kind of the page`);
});

test('transfer lists are chosen per request type, never by sniffing a value', async () => {
  const { requestTransfer, replyTransfer, Req: R } = await import('./protocol.js');
  const buf = new ArrayBuffer(8);
  assert.deepEqual(requestTransfer(R.CLASSIFY, { bytes: buf }), [buf]);
  assert.deepEqual(requestTransfer(R.LOAD_WEIGHTS, { bytes: buf }), [buf]);
  assert.deepEqual(requestTransfer(R.FT_ADD_IMAGE, { bytes: buf }), [], 'replayed edits keep their bytes');
  assert.deepEqual(requestTransfer(R.EXPLAIN, { bytes: buf }), []);
  assert.deepEqual(replyTransfer(R.EXPORT, buf), [buf]);
  const heat = new Float32Array(4), map = new Float32Array(2);
  assert.deepEqual(replyTransfer(R.BLOCK, { heatmap: heat, branches: [{ maps: map }] }), [heat.buffer, map.buffer]);
  assert.deepEqual(replyTransfer(R.FT_APPLY, { bytes: buf }), [], 'a report that happens to hold bytes is not transferred');
});
