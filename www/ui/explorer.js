// The Inception explorer: a map of the network from input to softmax (shapes from the model's
// own summary), expandable blocks with live branch activations, energy shares, a heatmap,
// the "why 1x1" arithmetic, and an honest list of where the weights differ from the paper.
import { thousands, shape, percent, shares, toGrey, inferno, num } from '../lib/format.js';

/** The four branches' titles, with the kernels this model really has (torchvision's "5×5" is a 3×3). */
function branchTitles(b) {
  const [k3, k5] = b.savings.map((s) => s.kernel);
  return ['1×1', `1×1 reduce → ${k3}×${k3}`, `1×1 reduce → ${k5}×${k5}`, '3×3 max pool → 1×1 proj'];
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('data-')) e.setAttribute(k, v);
    else e[k] = v;
  }
  e.append(...children.filter((c) => c != null));
  return e;
}

export function renderDifferences(container, report) {
  const items = [];
  const v = report.variant;
  if (v === 'bvlc') {
    items.push('These are the BVLC Caffe weights, the paper\'s network as released: LRN after pool1 and conv2, a real 5×5 branch, BGR input in 0–255 minus the ImageNet mean.');
  } else if (v === 'torchvision') {
    items.push('torchvision variant: every conv is followed by BatchNorm (added after the paper; the paper uses LRN in the stem instead).');
    items.push('torchvision\'s "5×5" branch is actually a 3×3 convolution (a known quirk kept for its pretrained weights).');
    if (report.transform_input) items.push('transform_input is on: ImageNet-normalised RGB is re-mapped to the scale these weights were trained on.');
  } else {
    items.push('seed (PyTorch tutorial) variant: conv + ReLU without LRN or BatchNorm; aux heads with dropout 0.5 before and after fc1.');
  }
  if (report.aux_fresh) items.push('The auxiliary classifiers (whose weighted losses join the main one during training, after 4a and 4d) are freshly initialised: the released weights do not include them.');
  items.push('Inference uses only the main classifier; the auxiliary heads run only in training, as in the paper.');
  container.replaceChildren(el('h3', {}, 'Where these weights differ from the paper'), el('ul', {}, ...items.map((t) => el('li', {}, t))));
}

/**
 * The network from input to softmax, drawn from the model's own summary (`summary.map`: every
 * stage in order, aux heads where they tap in), so each variant shows its own layers.
 * @param {HTMLElement} container
 * @param {object} summary  the model's own summary (map, blocks, totals)
 * @param {(index:number) => Promise<object>} loadBlock  fetches live activations of block i
 * @param {{defaults: {aux_weights: number[]}}|null} settings  the fine-tune defaults (aux loss weights)
 */
export function renderMap(container, summary, loadBlock, settings) {
  const step = (title, out, detail = '', cls = 'stage') =>
    el('div', { class: cls }, el('span', { class: 'stage-name' }, title), out ? el('span', { class: 'stage-shape' }, out) : null, detail ? el('span', { class: 'stage-detail' }, detail) : null);
  const rows = summary.map.map((r) => {
    if (r.kind === 'block') return blockCard(summary.blocks[r.block], r.block, loadBlock);
    if (r.kind === 'aux') {
      const w = settings?.defaults?.aux_weights?.[r.aux - 1];
      return step(`${r.name} (training only)`, '', `${r.detail.replace(/; training only$/, '')}${w != null ? `; loss weight ${num(w)}` : ''}`, 'stage aux-stage');
    }
    if (r.kind === 'fc') return step(r.name, `${r.output[0]} classes`, `${thousands(r.params)} params · ${r.detail}`);
    const detail = r.params ? `${r.detail} · ${thousands(r.params)} params` : r.detail;
    return step(r.name, shape(r.output), detail);
  });
  container.replaceChildren(...rows,
    el('p', { class: 'totals' }, `Main path: ${thousands(summary.main_params)} parameters, ${(summary.main_macs / 1e9).toFixed(3)} G multiply-adds per image.`));
}

function blockCard(b, index, loadBlock) {
  const [c1, c3, c5, pp] = b.split;
  const head = el('button', { class: 'block-head', type: 'button' },
    el('span', { class: 'stage-name' }, b.name.replace('_', ' ')),
    el('span', { class: 'stage-shape' }, `${shape(b.input)} → ${shape(b.output)} = ${c1} + ${c3} + ${c5} + ${pp}`),
    el('span', { class: 'split' }, ...b.split.map((c, j) => el('span', { class: `seg b${j}`, style: `flex:${c}`, title: `${branchTitles(b)[j]}: ${c} channels` }))));
  const body = el('div', { class: 'block-body', hidden: true });
  const card = el('section', { class: 'block', 'data-testid': `block-${b.name}` }, head, body);
  head.addEventListener('click', async () => {
    if (!body.hidden) { body.hidden = true; card.classList.remove('open'); return; }
    body.hidden = false;
    card.classList.add('open');
    body.replaceChildren(el('p', { class: 'note' }, 'reading activations…'));
    try {
      const view = await loadBlock(index);
      body.replaceChildren(...blockBody(b, view).filter((c) => c != null));
    } catch (e) {
      // A newer photo is on its way: its answer reopens this block.
      body.replaceChildren(el('p', { class: 'note' }, e.stale ? 'waiting for the new photo…' : String(e.message || e)));
    }
  });
  return card;
}

/**
 * One block's live view, on its own (presenter mode): the four branches and where the block
 * responds, without the card around it and without the parameter arithmetic.
 * @param {HTMLElement} container
 * @param {object} b  the block's entry in the model's summary (`summary.blocks[i]`)
 * @param {object} view  the block view (Req.BLOCK's answer)
 */
export function renderBlockView(container, b, view) {
  const [branches, , extra] = blockBody(b, view);
  const heat = extra.querySelector('figure');
  container.replaceChildren(el('div', { class: 'block-view' }, branches, heat));
}

/** The block's name as the page shows it ("inception 4c"). */
export const blockName = (b) => b.name.replace('_', ' ');

function blockBody(b, view) {
  const energy = shares(view.energy);
  const cols = view.branches.map((br, j) => {
    const k = br.channels.length;
    const side = Math.ceil(Math.sqrt(k));
    const cell = view.w;
    const canvas = el('canvas', { 'data-branch': br.name, width: side * (cell + 1), height: side * (cell + 1), class: 'fmap' });
    canvas.title = `${branchTitles(b)[j]}: the ${k} most active of ${br.count} channels`;
    drawMaps(canvas, br.maps, k, view.h, view.w, side);
    return el('div', { class: `branch b${j}` },
      el('h4', {}, branchTitles(b)[j]),
      el('p', { class: 'branch-meta' }, `${br.count} channels · ${percent(energy[j])} of the block's activation energy`),
      el('div', { class: 'energy' }, el('span', { style: `width:${(energy[j] * 100).toFixed(1)}%` })),
      canvas,
      el('p', { class: 'branch-meta small' }, `strongest: ${br.channels.slice(0, 6).join(', ')}${k > 6 ? '…' : ''}`));
  });
  const before = view.before ? beforeRow(view) : null;
  const heat = el('canvas', { class: 'heat', width: 224, height: 224 });
  drawHeat(heat, view.heatmap, view.h, view.w, document.getElementById('preview'));
  return [
    el('div', { class: 'branches' }, ...cols),
    before,
    el('div', { class: 'block-extra' },
      el('figure', {}, heat, el('figcaption', {}, `Where ${b.name.replace('_', ' ')} responds (mean activation, ${view.h}×${view.w}, over the crop)`)),
      whyOneByOne(b)),
  ];
}

/** The same block in the model the fine-tune started from. */
function beforeRow(view) {
  const b = view.before;
  const same = b.energy.every((e, j) => Math.abs(e - view.energy[j]) <= 1e-6 * Math.max(1, Math.abs(e)));
  const eb = shares(b.energy), ea = shares(view.energy);
  const cols = b.branches.map((br, j) => {
    const k = br.channels.length;
    const side = Math.ceil(Math.sqrt(k));
    const canvas = el('canvas', { class: 'fmap before', width: side * (b.w + 1), height: side * (b.h + 1) });
    drawMaps(canvas, br.maps, k, b.h, b.w, side);
    return el('div', { class: `branch b${j}` },
      el('p', { class: 'branch-meta' }, `before: ${percent(eb[j])} of the energy (now ${percent(ea[j])})`),
      canvas);
  });
  return el('div', { class: 'before-after' },
    el('h4', {}, 'Before fine-tuning'),
    el('p', { class: 'note' }, same
      ? 'Unchanged: this block did not train (only the heads, or later blocks, did), so its activations are identical.'
      : 'This block trained: compare its strongest channels and energy shares with the live ones above.'),
    el('div', { class: 'branches' }, ...cols));
}

function drawMaps(canvas, maps, k, h, w, side) {
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = '#222';
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  for (let i = 0; i < k; i++) {
    const grey = toGrey(maps.subarray(i * h * w, (i + 1) * h * w));
    const img = ctx.createImageData(w, h);
    for (let p = 0; p < h * w; p++) {
      const [r, g, bl] = inferno(grey[p] / 255);
      img.data[p * 4] = r; img.data[p * 4 + 1] = g; img.data[p * 4 + 2] = bl; img.data[p * 4 + 3] = 255;
    }
    ctx.putImageData(img, (i % side) * (w + 1), Math.floor(i / side) * (h + 1));
  }
}

export function drawHeat(canvas, heat, h, w, base = null) {
  const ctx = canvas.getContext('2d');
  const grey = toGrey(heat);
  const small = new OffscreenCanvas(w, h);
  const sctx = small.getContext('2d');
  const img = sctx.createImageData(w, h);
  for (let p = 0; p < h * w; p++) {
    const [r, g, b] = inferno(grey[p] / 255);
    img.data[p * 4] = r; img.data[p * 4 + 1] = g; img.data[p * 4 + 2] = b; img.data[p * 4 + 3] = 255;
  }
  sctx.putImageData(img, 0, 0);
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (base) ctx.drawImage(base, 0, 0, canvas.width, canvas.height);
  ctx.globalAlpha = base ? 0.55 : 1;
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(small, 0, 0, canvas.width, canvas.height);
  ctx.globalAlpha = 1;
}

function whyOneByOne(b) {
  const rows = b.savings.map((s) => {
    const ratio = s.params_without_reduction / s.params_with_reduction;
    return el('tr', {},
      el('td', {}, `${s.branch} branch (${s.kernel}×${s.kernel}, ${s.in_channels} → ${s.out_channels})`),
      el('td', {}, `${thousands(s.params_without_reduction)}`, el('br'), el('small', {}, `${s.in_channels}·${s.out_channels}·${s.kernel}²`)),
      el('td', {}, `${thousands(s.params_with_reduction)}`, el('br'), el('small', {}, `${s.in_channels}·${s.reduce_to} + ${s.reduce_to}·${s.out_channels}·${s.kernel}²`)),
      el('td', {}, `${(s.macs_without_reduction / 1e6).toFixed(1)} M → ${(s.macs_with_reduction / 1e6).toFixed(1)} M`),
      el('td', { class: 'ratio' }, `${ratio.toFixed(1)}× fewer`));
  });
  return el('div', { class: 'why' },
    el('h4', {}, 'Why the 1×1 reductions?'),
    el('p', {}, 'A 1×1 conv first squeezes the channels, so the expensive 3×3 and 5×5 filters see far fewer inputs.'),
    el('table', {},
      el('thead', {}, el('tr', {}, el('th', {}, 'branch'), el('th', {}, 'weights without'), el('th', {}, 'weights with 1×1'), el('th', {}, 'multiply-adds'), el('th', {}, ''))),
      el('tbody', {}, ...rows)));
}
