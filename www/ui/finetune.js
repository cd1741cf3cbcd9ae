// The fine-tune view: classes and their images, settings, the training loop (driven step by
// step, each step in the worker), live loss/accuracy chart, held-out predictions, apply/export.
import { extent, project } from '../lib/chart.js';
import { percent } from '../lib/format.js';

const $ = (id) => document.getElementById(id);
const MAX_CLASSES = 10, MIN_IMAGES = 3, MAX_IMAGES = 30;
const SERIES = [['loss', 'total (weighted)', '#1d1d1f'], ['main', 'main', '#1a73e8'], ['aux1', 'aux1 (4a)', '#ea4335'], ['aux2', 'aux2 (4d)', '#fbbc04']];

/**
 * @param {object} api  { request(msg, transfer) → Promise, lastImage() → Uint8Array|null, onApplied(report) }
 */
export function setupFinetune(api) {
  const classes = [];
  let steps = [];
  let stopping = false;
  let running = false;
  let heldOut = null;
  let applied = false;

  function addClass() {
    if (classes.length >= MAX_CLASSES) return;
    const i = classes.length;
    const row = document.createElement('div');
    row.className = 'ft-class';
    row.innerHTML = `
      <input type="text" data-testid="class-name-${i}" value="class ${String.fromCharCode(65 + i)}" aria-label="name of class ${i + 1}">
      <label class="file-btn">add images<input type="file" multiple accept="image/*" data-testid="class-files-${i}"></label>
      <button type="button" class="add-current" title="add the image last classified on the Classify tab">+ current image</button>
      <span class="count">0 images</span>
      <div class="thumbs"></div>`;
    const entry = { row, images: [], name: row.querySelector('input[type=text]') };
    classes.push(entry);
    row.querySelector('input[type=file]').addEventListener('change', async (e) => {
      for (const f of e.target.files) await addImage(entry, i, new Uint8Array(await f.arrayBuffer()));
      e.target.value = '';
    });
    row.querySelector('.add-current').addEventListener('click', () => {
      const img = api.lastImage();
      if (img) addImage(entry, i, img); else showError('Classify an image on the first tab (or drop one here) first.');
    });
    row.addEventListener('dragover', (e) => e.preventDefault());
    row.addEventListener('drop', async (e) => {
      e.preventDefault(); e.stopPropagation();
      for (const f of e.dataTransfer.files) await addImage(entry, i, new Uint8Array(await f.arrayBuffer()));
    });
    $('ft-classes').append(row);
    $('class-add').disabled = classes.length >= MAX_CLASSES;
  }

  async function addImage(entry, label, bytes) {
    if (entry.images.length >= MAX_IMAGES) return showError(`At most ${MAX_IMAGES} images per class.`);
    try {
      await api.request({ type: 'ft-add', label, bytes: bytes.slice().buffer });
    } catch (e) {
      return showError(e.message);
    }
    entry.images.push(bytes);
    entry.row.querySelector('.count').textContent = `${entry.images.length} image${entry.images.length === 1 ? '' : 's'}`;
    const url = URL.createObjectURL(new Blob([bytes]));
    const img = document.createElement('img');
    img.src = url;
    entry.row.querySelector('.thumbs').append(img);
    showError('');
  }

  function showError(msg) {
    $('ft-error').textContent = msg;
    $('ft-error').hidden = !msg;
  }

  function config() {
    return {
      batch: Number($('ft-batch').value), lr: Number($('ft-lr').value), train: $('ft-train').value,
      optimizer: $('ft-opt').value, aux: $('ft-aux').checked, aux1: Number($('ft-aux1').value),
      aux2: Number($('ft-aux2').value), augment: $('ft-augment').checked, seed: Number($('ft-seed').value),
    };
  }

  async function start() {
    showError('');
    const used = classes.filter((c) => c.images.length > 0 || classes.indexOf(c) < 2);
    const short = used.find((c) => c.images.length < MIN_IMAGES);
    if (short) return showError(`Class “${short.name.value}” has ${short.images.length} images; at least ${MIN_IMAGES} are needed.`);
    const total = Number($('ft-steps').value);
    if (!(total >= 1 && total <= 500)) return showError('Steps must be between 1 and 500.');
    const labels = used.map((c) => c.name.value.trim() || 'unnamed');
    try {
      await api.request({ type: 'ft-start', labels: JSON.stringify(labels), config: JSON.stringify(config()) });
    } catch (e) { return showError(e.message); }
    steps = [];
    publish();
    running = true; stopping = false;
    $('ft-start').disabled = true; $('ft-stop').disabled = false;
    $('ft-apply').disabled = true; $('ft-export').disabled = true;
    $('ft-progress').max = total; $('ft-progress').value = 0;
    try {
      for (let s = 0; s < total && !stopping; s++) {
        const r = await api.request({ type: 'ft-step' });
        steps.push({ step: r.step, loss: r.loss, main: r.main, aux1: r.aux1, aux2: r.aux2, acc: r.acc, ms: r.ms });
        $('ft-progress').value = s + 1;
        $('ft-status').textContent = `step ${r.step}/${total} · ${r.ms.toFixed(0)} ms · batch accuracy ${percent(r.acc, 0)}`;
        publish();
        if (heldOut && (s % 2 === 1 || s === total - 1)) await predictHeldOut();
      }
      $('ft-status').textContent += stopping ? ' · stopped' : ' · done';
    } catch (e) {
      showError(`Training stopped: ${e.message}. The weights from the last good step are kept.`);
    } finally {
      running = false;
      $('ft-start').disabled = false; $('ft-stop').disabled = true;
      $('ft-apply').disabled = steps.length === 0; $('ft-export').disabled = steps.length === 0;
      applied = false;
    }
  }

  function publish() {
    $('finetune-log').dataset.steps = JSON.stringify(steps.map(({ ms, ...s }) => s));
    $('finetune-log').dataset.ms = JSON.stringify(steps.map((s) => s.ms));
    $('finetune-log').textContent = steps.map((s) => `step ${s.step}: loss ${s.loss.toFixed(3)} = ${s.main.toFixed(3)} + ${config().aux ? `${config().aux1}·${s.aux1.toFixed(3)} + ${config().aux2}·${s.aux2.toFixed(3)}` : `0 (aux off: ${s.aux1.toFixed(3)}, ${s.aux2.toFixed(3)})`} · acc ${percent(s.acc, 0)}`).join('\n');
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
    const range = extent(SERIES.map(([k]) => steps.map((s) => s[k])));
    ctx.fillStyle = '#555'; ctx.font = '12px system-ui';
    ctx.fillText(range[1].toFixed(2), 4, box.y + 10); ctx.fillText(range[0].toFixed(2), 4, box.y + box.h);
    ctx.fillText('loss', 4, box.y + box.h / 2);
    ctx.fillText(`step ${steps.length}`, box.x + box.w - 40, H - 8);
    for (const [k, , color] of SERIES) line(ctx, steps.map((s) => s[k]), range, box, color, k === 'loss' ? 3 : 1.5);
    line(ctx, steps.map((s) => s.acc), [0, 1], box, '#34a853', 1.5, [5, 4]);
    ctx.fillStyle = '#34a853'; ctx.fillText('100%', box.x + box.w + 4, box.y + 10); ctx.fillText('accuracy', box.x + box.w + 4, box.y + 26);
    SERIES.forEach(([, label, color], j) => { ctx.fillStyle = color; ctx.fillRect(box.x + 8 + j * 120, H - 18, 14, 4); ctx.fillStyle = '#333'; ctx.fillText(label, box.x + 26 + j * 120, H - 12); });
  }

  function line(ctx, values, range, box, color, width, dash = []) {
    if (!values.length) return;
    ctx.strokeStyle = color; ctx.lineWidth = width; ctx.setLineDash(dash);
    ctx.beginPath();
    values.forEach((v, i) => { const [x, y] = project(i, values.length, v, range, box); i ? ctx.lineTo(x, y) : ctx.moveTo(x, y); });
    ctx.stroke(); ctx.setLineDash([]); ctx.lineWidth = 1;
  }

  async function predictHeldOut() {
    const r = await api.request({ type: 'ft-predict', bytes: heldOut.slice().buffer });
    const col = (name, top) => `<div><h4>${name}</h4><ol class="top5 small">${top.map((p) => `<li data-label="${p.label}" data-prob="${p.prob}"><span class="label">${p.label}</span><span class="bar" style="--p:${p.prob}"></span><span class="prob">${percent(p.prob)}</span></li>`).join('')}</ol></div>`;
    $('ft-predictions').innerHTML = `<h3>Held-out image, after step ${steps.length}</h3><div class="cols">${col('main head', r.main)}${col('aux1 (after 4a)', r.aux1)}${col('aux2 (after 4d)', r.aux2)}</div>`;
  }

  $('class-add').addEventListener('click', addClass);
  $('ft-start').addEventListener('click', start);
  $('ft-stop').addEventListener('click', () => { stopping = true; });
  $('ft-heldout').addEventListener('change', async (e) => {
    const f = e.target.files[0];
    if (!f) return;
    heldOut = new Uint8Array(await f.arrayBuffer());
    const bmp = await createImageBitmap(new Blob([heldOut])).catch(() => null);
    if (bmp) $('ft-heldout-preview').getContext('2d').drawImage(bmp, 0, 0, 112, 112);
  });
  async function apply() {
    const m = await api.request({ type: 'ft-apply' });
    api.onApplied(m.report);
    applied = true;
    $('ft-status').textContent = 'the fine-tuned model now classifies on the first tab';
  }
  $('ft-apply').addEventListener('click', () => apply().catch((e) => showError(e.message)));
  $('ft-export').addEventListener('click', async () => {
    try {
      // Export what was trained: it becomes the page's model first.
      if (!applied) await apply();
      const m = await api.request({ type: 'export' });
      const a = document.createElement('a');
      a.href = URL.createObjectURL(new Blob([m.bytes], { type: 'application/octet-stream' }));
      a.download = 'googlenet-finetuned.safetensors';
      document.body.append(a); a.click(); a.remove();
    } catch (e) { showError(e.message); }
  });
  addClass(); addClass();
  drawChart();
  return { running: () => running, reset: () => { for (const c of classes) { c.images = []; c.row.querySelector('.count').textContent = '0 images'; c.row.querySelector('.thumbs').replaceChildren(); } } };
}
