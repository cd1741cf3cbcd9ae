// The model's lifecycle decisions (app/model.js), with a fake worker client and a recording UI.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createModel, classCount } from './model.js';
import { Req, Kind, RequestError } from '../lib/protocol.js';

const REPORT = { variant: 'bvlc', num_classes: 1000, has_base: false, summary: { blocks: [] } };
const INFO = { backend: 'cpu', engine: 'cpu', threads: 1, label: 'CPU, 1 thread', phases: {}, settings: {}, report: REPORT };
const tick = () => new Promise((r) => setTimeout(r, 0));

/** A worker client whose answers the test scripts: `answers[type](payload)` returns a value, throws, or returns a promise. */
function fakeClient(answers = {}) {
  const c = {
    starts: [], requests: [],
    start: async (init) => {
      c.starts.push(init);
      if (answers.init) return answers.init(init, c.starts.length);
      return INFO;
    },
    request: async (type, payload) => {
      c.requests.push([type, payload]);
      const a = answers[type];
      if (!a) return undefined;
      return a(payload);
    },
  };
  return c;
}

function recordingUi() {
  const log = { status: [], error: [], results: [], failures: [], restarted: [], weights: [] };
  const ui = {
    now: () => 1000,
    status: (t) => log.status.push(t),
    error: (m) => { if (m) log.error.push(m); },
    startFailure: (e, o) => log.failures.push(e ? { message: e.message, ...o } : null),
    stale: () => false, reload: () => { throw new Error('no reload expected'); },
    booted: () => {}, timeline: () => {}, backend: () => {}, report: () => {},
    weightsLoaded: (r, name) => log.weights.push(name || r.variant),
    settings: () => {}, offlineReady: () => {},
    modelRestarted: (o) => log.restarted.push(o), modelChanged: () => {},
    clear: () => {}, decode: async () => null,
    result: (r) => log.results.push(r),
    reason: () => {}, reasonText: () => '', raced: () => {},
  };
  return { ui, log };
}

function setup(answers) {
  const client = fakeClient(answers);
  const { ui, log } = recordingUi();
  const model = createModel({
    client, makeProbe: () => { throw new Error('no race expected'); },
    choose: async () => ({ engine: 'cpu', threads: 1, cpu: { engine: 'cpu', threads: 1, why: 'test' }, adapter: '', reason: 'test' }),
    remember: () => {},
    config: { weightsUrl: 'w/default', defaultWeightsUrl: 'w/default', labelsUrl: 'l', stallMs: 1000, fault: '', requested: 'cpu' },
    ui,
  });
  return { client, model, log };
}

const top = (label) => ({ top: [{ index: 0, label, prob: 0.9 }], ms: 1, ms_forward: 1, wasmBytes: 1 });
const bytesOf = (label) => new TextEncoder().encode(label);
const labelOf = (payload) => new TextDecoder().decode(new Uint8Array(payload.bytes));

test('only the newest photo reaches the screen, whatever order the answers come in', async () => {
  const pending = [];
  const { model, log } = setup({ [Req.CLASSIFY]: (p) => new Promise((resolve) => pending.push(() => resolve(top(labelOf(p))))) });
  await model.boot('cpu');
  const a = model.classify(bytesOf('dog'));
  const b = model.classify(bytesOf('cat'));
  await tick();
  pending[1](); // the cat's answer first
  pending[0](); // then the dog's, late
  await Promise.all([a, b]);
  assert.deepEqual(log.results.map((r) => r.res.top[0].label), ['cat']);
  assert.ok(model.photos.settled());
  assert.equal(new TextDecoder().decode(model.state.lastImage), 'cat');
});

test('a slow read of an earlier photo is dropped when a later one was given meanwhile', async () => {
  const { model, log } = setup({ [Req.CLASSIFY]: (p) => top(labelOf(p)) });
  await model.boot('cpu');
  let releaseBig;
  const big = model.takePhoto(() => new Promise((r) => { releaseBig = () => r(bytesOf('dog').buffer); }));
  const small = model.takePhoto(async () => bytesOf('cat').buffer);
  await small;
  releaseBig();
  await big;
  assert.deepEqual(log.results.map((r) => r.res.top[0].label), ['cat']);
});

test('a start that fails keeps the photo given meanwhile, and the default weights then classify it', async () => {
  const { client, model, log } = setup({
    init: (init) => {
      if (init.weightsUrl !== 'w/default') throw new RequestError('the weights could not be downloaded', Kind.INPUT, Req.INIT);
      return INFO;
    },
    [Req.CLASSIFY]: (p) => top(labelOf(p)),
  });
  model.state.weightsUrl = 'http://unreachable/x';
  assert.equal(await model.boot('cpu'), false);
  assert.deepEqual(log.failures.at(-1), { message: 'the weights could not be downloaded', custom: true, waiting: false });
  assert.equal(log.status.at(-1), 'error');
  await model.classify(bytesOf('cat'));
  assert.equal(log.status.at(-1), 'error', 'no stuck "loading"');
  assert.equal(log.failures.at(-1).waiting, true, 'the failure says the photo waits');
  assert.equal(await model.retry(), false, 'Retry fails the same way, once');
  assert.equal(client.starts.length, 2);
  assert.equal(await model.useDefaultWeights(), true);
  await tick();
  assert.equal(client.starts.at(-1).weightsUrl, 'w/default');
  assert.deepEqual(log.results.map((r) => r.res.top[0].label), ['cat'], 'the waiting photo is classified once a model is ready');
});

test('a crash restarts the worker once per dead worker, puts the user\'s model back, and stops after three in a row', async () => {
  let crash = true;
  const { client, model, log } = setup({
    [Req.CLASSIFY]: () => { if (crash) throw new RequestError('unreachable executed', Kind.CRASH, Req.CLASSIFY, client.starts.length); return top('cat'); },
    [Req.LOAD_WEIGHTS]: () => ({ ...REPORT, variant: 'seed' }),
  });
  await model.boot('cpu');
  assert.equal(await model.loadOwnWeights(new ArrayBuffer(4), 'mine.safetensors', ''), true);
  await model.classify(bytesOf('x'));
  assert.equal(client.starts.length, 2, 'one restart');
  assert.deepEqual(client.requests.filter(([t]) => t === Req.LOAD_WEIGHTS).length, 2, 'the user\'s weights were loaded again');
  assert.match(log.error.at(-1), /restarted and is ready again: your model \(mine\.safetensors\) was put back/);
  assert.deepEqual(log.restarted.at(-1), { restored: true });
  assert.equal(log.weights.at(-1), 'mine.safetensors');
  // The same dead worker reported twice restarts it once.
  const again = new RequestError('gone', Kind.CRASH, Req.BLOCK, client.starts.length);
  await model.recover(again, null);
  await model.recover(again, null);
  assert.equal(client.starts.length, 3);
  await model.classify(bytesOf('x'));
  assert.equal(client.starts.length, 4, 'the third restart in a row');
  await model.classify(bytesOf('x'));
  assert.equal(client.starts.length, 4, 'the budget of three restarts is spent: no fourth');
  assert.match(log.error.at(-1), /stopped repeatedly/);
  assert.equal(log.status.at(-1), 'error');
});

test('an engine switch mid-classification carries the newest photo over to the new engine', async () => {
  let release;
  const { client, model, log } = setup({
    init: async (init, n) => {
      if (n === 2) release(); // the switch's start cancels what the old worker had pending
      return INFO;
    },
    [Req.CLASSIFY]: (p) => (client.starts.length === 1
      ? new Promise((_, reject) => { release = () => reject(new RequestError('restarted', Kind.RESTART, Req.CLASSIFY, 1)); })
      : top(labelOf(p))),
  });
  await model.boot('cpu');
  const pending = model.classify(bytesOf('dog'));
  await tick();
  await model.switchEngine('auto');
  await pending;
  await tick();
  assert.equal(client.starts.length, 2);
  assert.deepEqual(log.results.map((r) => r.res.top[0].label), ['dog'], 'the photo is classified on the new engine');
});

test('bad user weights leave the previous model and say so in words', async () => {
  const { model, log } = setup({ [Req.LOAD_WEIGHTS]: () => { throw new RequestError('not a safetensors file', Kind.INPUT, Req.LOAD_WEIGHTS); } });
  await model.boot('cpu');
  model.state.report = REPORT;
  assert.equal(await model.loadOwnWeights(new ArrayBuffer(4), 'x.bin', ''), false);
  assert.match(log.error.at(-1), /x\.bin was not loaded: not a safetensors file\. Still using the previous model \(bvlc, 1,000 classes\)/);
  assert.equal(model.state.userModel, null);
  assert.equal(classCount(1), '1 class');
});
