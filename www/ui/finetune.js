// The fine-tune view: classes (ids from the worker, which owns the data set) and their images,
// settings, the training loop (driven step by step, each step in the worker), live loss and
// accuracy chart, held-out predictions, apply and export. User text is only ever textContent.
import { extent, project } from '../lib/chart.js';
import { percent, num } from '../lib/format.js';
import { renderTop } from './results.js';
import { Req, triage } from '../lib/protocol.js';

const $ = (id) => document.getElementById(id);
const SERIES = [['loss', 'total (weighted)', '#1d1d1f'], ['main', 'main', '#1a73e8'], ['aux1', 'aux1 (4a)', '#ea4335'], ['aux2', 'aux2 (4d)', '#fbbc04']];

function el(tag, props = {}, ...children) {
  const e = Object.assign(document.createElement(tag), props);
  e.append(...children.filter((c) => c != null));
  return e;
}

/**
 * @param {object} api  { request(type, payload, transfer) → Promise, recover(err), ready() → bool,
 *                        lastImage() → Uint8Array|null, onApplied(report) }
 */
export function setupFinetune(api) {
  /** In page order: { id: Promise<number>, row, images: Uint8Array[], name: HTMLInputElement } */
  const classes = [];
  /** From the model (`train::LIMITS`), once it has loaded. */
  let limits = null;
  let steps = [];
  let stopping = false;
  let running = false;
  let heldOut = null;
  let applied = false;
  /** How many steps had been trained when the model was last exported (unsaved work otherwise). */
  let exportedSteps = 0;
  let created = 0;
  /** The idle-time loop that runs the frozen layers ahead of a heads-only run (see `prepare`). */
  let preparing = null;
  /** Start was clicked and its first requests are on their way: preparing yields to them. */
  let starting = false;
  /** Views of each image with random crops and flips on (from the model's settings). */
  let augmentViews = 1;
  /** Image additions still on their way to the worker: Start waits for them. */
  const adding = new Set();

  const showError = (msg) => { $('ft-error').textContent = msg; $('ft-error').hidden = !msg; };
  const status = (msg) => { $('ft-status').textContent = msg; };

  /** A failed request: input errors are shown; crashes and timeouts go to the page's recovery. */
  async function failed(e, what) {
    const whose = triage(e);
    if (whose === 'show') return showError(`${what}: ${e.message}`);
    if (whose === 'cancelled') return showError(`${what}: the model restarted meanwhile; try again.`);
    showError(`${what}: ${e.message}`);
    await api.recover(e);
  }

  /** The model is there now: a "waiting for the model" note from an earlier request goes. */
  function modelThere() {
    if (!running && !starting && $('ft-status').textContent.startsWith('waiting for the model')) status('');
  }

  function request(type, payload, transfer) {
    if (!api.ready()) status('waiting for the model to finish loading…');
    return api.request(type, payload, transfer);
  }

  function addClass() {
    if (limits && classes.length >= limits.max_classes) return showError(`At most ${limits.max_classes} classes.`);
    const letter = String.fromCharCode(65 + (created++ % 26));
    const name = el('input', { type: 'text', value: `class ${letter}` });
    name.setAttribute('aria-label', 'class name');
    const files = el('input', { type: 'file', multiple: true, accept: 'image/*' });
    const current = el('button', { type: 'button', className: 'add-current', title: 'add the image last classified on the Classify tab', textContent: '+ current image' });
    const remove = el('button', { type: 'button', className: 'remove-class', title: 'remove this class and its images', textContent: '✕' });
    const count = el('span', { className: 'count', textContent: '0 images' });
    const row = el('div', { className: 'ft-class' }, name, el('label', { className: 'file-btn' }, 'add images', files), current, remove, count, el('div', { className: 'thumbs' }));
    const entry = { row, images: [], name, count, id: null, sent: name.value };
    classes.push(entry);
    ensureId(entry);
    renumber();
    name.addEventListener('change', async () => {
      try { await request(Req.FT_RENAME, { id: await ensureId(entry), name: name.value }); entry.sent = name.value; showError(''); } catch (e) { failed(e, 'Renaming'); }
    });
    files.addEventListener('change', (e) => {
      addFiles(entry, e.target.files);
      e.target.value = '';
    });
    current.addEventListener('click', () => {
      const img = api.lastImage();
      if (img) addImage(entry, img, 'the current image'); else showError('Classify an image on the first tab (or drop one on a class here) first.');
    });
    remove.addEventListener('click', async () => {
      if (running) return showError('Stop the training before removing a class.');
      try { await request(Req.FT_REMOVE_CLASS, { id: await ensureId(entry) }); drop(entry); showError(''); } catch (e) { failed(e, 'Removing a class'); }
    });
    row.addEventListener('dragover', (e) => e.preventDefault());
    row.addEventListener('drop', (e) => {
      e.preventDefault(); e.stopPropagation();
      addFiles(entry, e.dataTransfer.files);
    });
    $('ft-classes').append(row);
  }

  /**
   * The class's id in the worker's data set, asked for once. A model that did not load leaves
   * the row in place (the page says why and offers Retry); the id is asked for again once a
   * model is ready.
   */
  function ensureId(entry) {
    if (!entry.id) {
      entry.id = request(Req.FT_ADD_CLASS, { name: entry.name.value });
      entry.id.catch((e) => {
        if (e.code === 'model.not_loaded' || triage(e) === 'cancelled') { entry.id = null; return; }
        failed(e, 'Adding a class');
        drop(entry);
      });
    }
    return entry.id;
  }

  function drop(entry) {
    const i = classes.indexOf(entry);
    if (i >= 0) classes.splice(i, 1);
    entry.row.remove();
    renumber();
    prepare();
  }

  function renumber() {
    classes.forEach((c, i) => {
      c.name.dataset.testid = `class-name-${i}`;
      c.row.querySelector('input[type=file]').dataset.testid = `class-files-${i}`;
      c.row.querySelector('.remove-class').dataset.testid = `class-remove-${i}`;
    });
    $('class-add').disabled = Boolean(limits) && classes.length >= limits.max_classes;
  }

  function addImage(entry, bytes, what) {
    const done = (async () => {
      try {
        const n = await request(Req.FT_ADD_IMAGE, { id: await ensureId(entry), bytes: bytes.slice().buffer });
        entry.images.push(bytes);
        entry.count.textContent = `${n} image${n === 1 ? '' : 's'}`;
        const img = el('img', { src: URL.createObjectURL(new Blob([bytes])), alt: '' });
        entry.row.querySelector('.thumbs').append(img);
        modelThere();
        prepare();
      } catch (e) {
        await failed(e, `${what} was not added`);
      }
    })();
    adding.add(done);
    done.finally(() => adding.delete(done));
    return done;
  }

  /** Files picked or dropped on a class: all queued at once (in order), so Start can wait for them. */
  function addFiles(entry, files) {
    const reads = [...files].map((f) => f.arrayBuffer().then((b) => [new Uint8Array(b), f.name]));
    const all = (async () => {
      for (const r of reads) {
        const [bytes, name] = await r;
        await addImage(entry, bytes, name);
      }
    })();
    adding.add(all);
    all.finally(() => adding.delete(all));
    return all;
  }

  /**
   * Heads only: the frozen layers' output for each training crop is the same in every step, so
   * while the page is idle the worker computes it ahead, one crop per request (a classification
   * waits for at most one). A run then starts with that work done; steps reuse what is ready
   * and compute the rest. Stops when training starts, the mode changes or everything is ready.
   */
  function prepare() {
    const heads = () => $('ft-train').value === 'heads' && classes.some((c) => c.images.length);
    // Only heads-only training reads these: in any other mode, or with no images, no note.
    if (!heads()) $('ft-prepared').hidden = true;
    if (preparing) return;
    const wanted = () => !running && !starting && api.ready() && limits && heads();
    if (!wanted()) return;
    preparing = (async () => {
      try {
        while (wanted()) {
          const r = await api.request(Req.FT_PRECOMPUTE, { views: $('ft-augment').checked ? augmentViews : 1, n: 1 });
          showPrepared(r);
          if (r.ready >= r.wanted) break;
        }
      } catch (e) {
        // Not something the user asked for: a crash or a timeout restarts the model as usual,
        // anything else is left to the run (which computes what it needs).
        if (triage(e) === 'recover') await api.recover(e);
      } finally {
        preparing = null;
      }
    })();
  }

  function showPrepared({ ready, wanted }) {
    const p = $('ft-prepared');
    p.hidden = wanted === 0 || $('ft-train').value !== 'heads';
    p.dataset.ready = String(ready);
    p.dataset.wanted = String(wanted);
    p.textContent = ready >= wanted
      ? `All ${wanted} training crops have been through the frozen layers: heads-only steps now train only the heads.`
      : `Running the frozen layers ahead, while you wait: ${ready} of ${wanted} training crops ready (heads-only steps reuse them).`;
  }

  /**
   * A number field's value, or an error naming the field and what it holds: an empty or
   * unreadable field (a number input holding "fast" reads as "") is never sent as 0.
   */
  function field(id, what) {
    const input = $(id);
    const text = input.value.trim();
    const v = Number(text);
    if (input.validity?.badInput || !text) throw new Error(`${what}: the field does not hold a number; type one (for example ${input.defaultValue})`);
    if (!Number.isFinite(v)) throw new Error(`${what}: “${text}” is not a finite number`);
    return v;
  }

  /** The settings as typed; throws with the field's name when one is not a number. */
  function config() {
    return {
      batch: field('ft-batch', 'Batch'), lr: field('ft-lr', 'Learning rate'), trainable: $('ft-train').value,
      optimizer: $('ft-opt').value, aux: $('ft-aux').checked,
      aux_weights: [field('ft-aux1', 'aux1 weight'), field('ft-aux2', 'aux2 weight')],
      augment: $('ft-augment').checked, seed: field('ft-seed', 'Seed'),
    };
  }

  async function start() {
    showError('');
    const total = Number($('ft-steps').value);
    const maxSteps = limits?.max_steps ?? Infinity;
    if (!(Number.isInteger(total) && total >= 1 && total <= maxSteps)) {
      return showError(`Steps must be a whole number from 1 to ${maxSteps} (got “${$('ft-steps').value || 'nothing'}”).`);
    }
    let cfg;
    try { cfg = config(); } catch (e) { return showError(`Training did not start: ${e.message}.`); }
    $('ft-start').disabled = true;
    starting = true;
    status(api.ready() ? 'starting…' : 'waiting for the model to finish loading…');
    try {
      // Images still being added belong to this run.
      if (adding.size) {
        status(api.ready() ? 'adding the last images…' : 'waiting for the model to finish loading…');
        while (adding.size) await Promise.allSettled([...adding]);
      }
      // The names as typed now (a field still being edited has not fired `change` yet).
      for (const c of classes) {
        if (c.sent !== c.name.value) await request(Req.FT_RENAME, { id: await c.id, name: c.name.value });
        c.sent = c.name.value;
      }
      await request(Req.FT_START, { config: cfg });
    } catch (e) {
      $('ft-start').disabled = false;
      starting = false;
      status('');
      prepare();
      return failed(e, 'Training did not start');
    }
    steps = [];
    publish();
    running = true; stopping = false; starting = false;
    $('ft-stop').disabled = false;
    $('ft-apply').disabled = true; $('ft-export').disabled = true;
    $('ft-progress').max = total; $('ft-progress').value = 0;
    let ended = 'done';
    try {
      for (let s = 0; s < total && !stopping; s++) {
        const r = await request(Req.FT_STEP);
        // Each step keeps the settings it ran with, so the log never re-renders past steps
        // with today's form values.
        steps.push({ ...r, aux: cfg.aux, aux_weights: cfg.aux_weights });
        $('ft-progress').value = s + 1;
        status(`step ${r.step}/${total} · ${r.ms.toFixed(0)} ms · batch accuracy ${percent(r.acc, 0)}`);
        publish();
        if (heldOut && (s % 2 === 1 || s === total - 1)) await predictHeldOut().catch((e) => failed(e, 'The held-out image could not be shown'));
      }
      if (stopping) ended = 'stopped';
    } catch (e) {
      ended = 'stopped early';
      await failed(e, 'Training stopped');
    } finally {
      running = false;
      $('ft-start').disabled = false; $('ft-stop').disabled = true;
      $('ft-apply').disabled = steps.length === 0; $('ft-export').disabled = steps.length === 0;
      applied = false;
      if (steps.length) status(`${$('ft-status').textContent} · ${ended}`);
      prepare();
    }
  }

  function publish() {
    const log = $('finetune-log');
    log.dataset.steps = JSON.stringify(steps.map(({ step, loss, main, aux1, aux2, acc }) => ({ step, loss, main, aux1, aux2, acc })));
    log.dataset.ms = JSON.stringify(steps.map((s) => s.ms));
    log.textContent = steps.map((s) => {
      const mix = s.aux
        ? `${num(s.aux_weights[0])}·${s.aux1.toFixed(3)} + ${num(s.aux_weights[1])}·${s.aux2.toFixed(3)}`
        : `0 (aux off: ${s.aux1.toFixed(3)}, ${s.aux2.toFixed(3)})`;
      return `step ${s.step}: loss ${s.loss.toFixed(3)} = ${s.main.toFixed(3)} + ${mix} · acc ${percent(s.acc, 0)}`;
    }).join('\n');
    drawChart();
  }

  function drawChart() {
    const c = $('loss-chart');
    const ctx = c.getContext('2d');
    const W = c.width, H = c.height;
    ctx.clearRect(0, 0, W, H);
    ctx.fillStyle = '#fff'; ctx.fillRect(0, 0, W, H);
    const box = { x: 44, y: 14, w: W - 100, h: H - 44 };
    ctx.strokeStyle = '#ccc'; ctx.strokeRect(box.x, box.y, box.w, box.h);
    ctx.font = '12px system-ui';
    if (!steps.length) {
      // No axes before the first step: nothing is measured yet.
      ctx.fillStyle = '#555'; ctx.textAlign = 'center';
      ctx.fillText('The loss and the batch accuracy appear here, step by step.', box.x + box.w / 2, box.y + box.h / 2);
      ctx.textAlign = 'start';
      return;
    }
    const range = extent(SERIES.map(([k]) => steps.map((s) => s[k])));
    ctx.fillStyle = '#555';
    ctx.fillText(range[1].toFixed(2), 4, box.y + 10); ctx.fillText(range[0].toFixed(2), 4, box.y + box.h);
    ctx.fillText('loss', 4, box.y + box.h / 2);
    ctx.textAlign = 'right'; ctx.fillText(`step ${steps.length}`, W - 4, H - 12); ctx.textAlign = 'start';
    for (const [k, , color] of SERIES) line(ctx, steps.map((s) => s[k]), range, box, color, k === 'loss' ? 3 : 1.5);
    line(ctx, steps.map((s) => s.acc), [0, 1], box, '#34a853', 1.5, [5, 4]);
    // The right axis: batch accuracy, 0 to 100%.
    ctx.fillStyle = '#34a853';
    ctx.fillText('100%', box.x + box.w + 4, box.y + 10); ctx.fillText('0%', box.x + box.w + 4, box.y + box.h);
    ctx.fillText('acc.', box.x + box.w + 4, box.y + box.h / 2);
    const legend = [...SERIES.map(([, label, color]) => [label, color, []]), ['batch accuracy', '#34a853', [5, 4]]];
    let x = box.x + 4;
    legend.forEach(([label, color, dash]) => {
      ctx.strokeStyle = color; ctx.lineWidth = 3; ctx.setLineDash(dash);
      ctx.beginPath(); ctx.moveTo(x, H - 16); ctx.lineTo(x + 16, H - 16); ctx.stroke();
      ctx.setLineDash([]); ctx.lineWidth = 1;
      ctx.fillStyle = '#333'; ctx.fillText(label, x + 20, H - 12);
      x += 20 + ctx.measureText(label).width + 14;
    });
  }

  function line(ctx, values, range, box, color, width, dash = []) {
    if (!values.length) return;
    ctx.strokeStyle = color; ctx.lineWidth = width; ctx.setLineDash(dash);
    ctx.beginPath();
    values.forEach((v, i) => { const [x, y] = project(i, values.length, v, range, box); i ? ctx.lineTo(x, y) : ctx.moveTo(x, y); });
    ctx.stroke(); ctx.setLineDash([]); ctx.lineWidth = 1;
  }

  async function predictHeldOut() {
    const r = await request(Req.FT_PREDICT, { bytes: heldOut.slice().buffer });
    const col = (name, top) => {
      const ol = el('ol', { className: 'top5 small' });
      renderTop(ol, top);
      return el('div', {}, el('h4', { textContent: name }), ol);
    };
    $('ft-predictions').replaceChildren(
      el('h3', { textContent: `Held-out image, after step ${steps.length}` }),
      el('div', { className: 'cols' }, col('main head', r.main), col('aux1 (after 4a)', r.aux1), col('aux2 (after 4d)', r.aux2)));
  }

  async function apply() {
    const report = await request(Req.FT_APPLY);
    applied = true;
    await api.onApplied(report);
    // The worker keeps the features computed ahead when only the heads trained (same frozen
    // layers) and starts afresh otherwise: either way, the note shows where it stands.
    prepare();
    status('the fine-tuned model now classifies on the first tab');
  }

  $('class-add').addEventListener('click', addClass);
  $('ft-start').addEventListener('click', start);
  $('ft-stop').addEventListener('click', () => { stopping = true; });
  for (const id of ['ft-train', 'ft-augment']) $(id).addEventListener('change', () => prepare());
  $('ft-heldout').addEventListener('change', async (e) => {
    const f = e.target.files[0];
    if (!f) return;
    heldOut = new Uint8Array(await f.arrayBuffer());
    const bmp = await createImageBitmap(new Blob([heldOut])).catch(() => null);
    if (bmp) $('ft-heldout-preview').getContext('2d').drawImage(bmp, 0, 0, 112, 112);
    else showError(`${f.name} is not an image the browser can show; it may still be refused by the model.`);
  });
  $('ft-apply').addEventListener('click', () => apply().catch((e) => failed(e, 'Applying the fine-tuned model')));
  $('ft-export').addEventListener('click', async () => {
    try {
      // Export what was trained: it becomes the page's model first.
      if (!applied) await apply();
      // The page keeps the applied model's bytes (they survive a restart of the model).
      const bytes = api.keptModel() || (await request(Req.EXPORT));
      const a = el('a', { href: URL.createObjectURL(new Blob([bytes], { type: 'application/octet-stream' })), download: 'googlenet-finetuned.safetensors' });
      document.body.append(a); a.click(); a.remove();
      exportedSteps = steps.length;
    } catch (e) { failed(e, 'Export failed'); }
  });
  addClass(); addClass();
  drawChart();
  return {
    running: () => running,
    /** Trained steps that were not exported: leaving the page loses them (it asks first). */
    unsaved: () => steps.length > 0 && exportedSteps !== steps.length,
    /**
     * The worker restarted: its trainer is gone (the data set is replayed). `restored`: the page
     * put the applied model back, so it still classifies and can still be exported.
     */
    modelRestarted({ restored = false } = {}) {
      applied = restored && applied;
      $('ft-prepared').hidden = true; // the worker's features are gone; they are redone once it is back
      $('ft-apply').disabled = true;
      $('ft-export').disabled = !(applied && api.keptModel());
      if (steps.length && !running) {
        status(applied && api.keptModel()
          ? 'the model restarted; the fine-tuned model was put back (export it, or train again to change it)'
          : 'the model restarted: train again to apply or export');
      }
    },
    /** Another model classifies now (own weights loaded): its features are computed afresh. */
    modelChanged: () => prepare(),
    /** Limits and default settings from the model (one source: the Rust library). */
    setSettings(settings) {
      limits = settings.limits;
      augmentViews = settings.views;
      const d = settings.defaults;
      const side = settings.example_side;
      const mb = (limits.max_classes * limits.max_images_per_class * side * side * 3) / 1e6;
      $('ft-limits').textContent = `Limits: 2–${limits.max_classes} classes, ${limits.min_images_per_class}–${limits.max_images_per_class} images per class (kept in memory at ${side}×${side}, up to ${Math.round(mb)} MB in all), batch up to ${limits.max_batch}, up to ${limits.max_steps} steps.`;
      $('ft-steps').max = String(limits.max_steps);
      $('ft-batch').max = String(limits.max_batch);
      for (const id of ['ft-aux1', 'ft-aux2']) $(id).max = String(limits.max_aux_weight);
      if (!running && !steps.length) {
        $('ft-batch').value = num(d.batch); $('ft-lr').value = num(d.lr);
        $('ft-aux1').value = num(d.aux_weights[0]); $('ft-aux2').value = num(d.aux_weights[1]);
        $('ft-aux').checked = d.aux; $('ft-augment').checked = d.augment; $('ft-seed').value = String(d.seed);
        $('ft-opt').value = d.optimizer; $('ft-train').value = d.trainable;
      }
      for (const c of classes) ensureId(c);
      renumber();
      modelThere();
      prepare();
    },
  };
}
