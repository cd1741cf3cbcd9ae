// "Why?": Grad-CAM for any class, computed in the worker (burn's autodiff on whichever engine
// runs) and drawn over the 224×224 crop. Which class (top-5 or any by name), which block, and,
// after a fine-tune with the aux losses, which head.
import { Req, triage } from '../lib/protocol.js';
import { lookupClass, describeEvidence, shortName } from '../lib/explain.js';
import { drawHeat } from './explorer.js';

const $ = (id) => document.getElementById(id);
const HEAD_NAMES = { main: 'main classifier', aux1: 'aux1 (after 4a)', aux2: 'aux2 (after 4d)' };

/**
 * @param {{request: Function, recover: (e) => void, engine: () => string}} deps
 */
export function setupExplain({ request, recover, engine }) {
  const box = $('explain');
  const toggle = $('explain-toggle');
  const classSel = $('explain-class');
  const blockSel = $('explain-block');
  const headSel = $('explain-head');
  const find = $('explain-find');
  const status = $('explain-status');
  const overlay = $('overlay');
  let report = null;
  let on = false;
  /** Requests in flight are numbered: only the latest one draws. */
  let seq = 0;

  /** The status line: `lead` always shown, `more` (how to read it, the time) hidden when presenting. */
  const say = (lead, kind = '', more = '') => {
    status.className = `note ${kind}`.trim();
    if (!lead && !more) { status.replaceChildren(); return; }
    const a = document.createElement('span');
    a.className = 'lead';
    a.textContent = lead;
    const b = document.createElement('span');
    b.className = 'more';
    b.textContent = more ? ` ${more}` : '';
    status.replaceChildren(a, b);
  };

  function heads() { return report?.explain || [{ head: 'main', default_block: 6, last_block: 8 }]; }
  function headInfo() { return heads().find((h) => h.head === headSel.value) || heads()[0]; }

  function fillBlocks() {
    const info = headInfo();
    const keep = Number(blockSel.value);
    blockSel.replaceChildren(...report.summary.blocks.map((b, i) => {
      const o = new Option(`${b.name} (${b.output[1]}×${b.output[2]})`, String(i));
      o.disabled = i > info.last_block;
      return o;
    }));
    blockSel.value = String(Number.isInteger(keep) && keep <= info.last_block && blockSel.dataset.chosen ? keep : info.default_block);
  }

  function setOn(value) {
    on = value;
    toggle.setAttribute('aria-pressed', String(on));
    toggle.textContent = on ? 'Hide the evidence' : 'Why? Show the evidence';
    box.classList.toggle('active', on);
    if (!on) {
      seq++;
      if (overlay.dataset.kind === 'explain') { overlay.classList.remove('shown'); overlay.dataset.kind = ''; }
      say('');
    }
  }

  async function run() {
    if (!on) return;
    const cls = Number(classSel.value);
    const block = Number(blockSel.value);
    const head = headSel.value || 'main';
    const label = report.labels[cls] ?? `class ${cls}`;
    const layer = report.summary.blocks[block].name;
    const mine = ++seq;
    box.dataset.state = 'computing';
    say(`Finding the evidence for “${shortName(label)}” in ${layer}…`);
    try {
      const e = await request(Req.EXPLAIN, { class: cls, block, head });
      if (mine !== seq) return; // a newer request (or "hide") replaced this one
      const h = e.grid.length, w = e.grid[0].length;
      const d = describeEvidence(e.grid);
      drawHeat(overlay, Float32Array.from(e.grid.flat()), h, w, null);
      overlay.classList.toggle('shown', d.max > 0);
      overlay.dataset.kind = 'explain';
      overlay.title = `Grad-CAM: where ${e.layer} holds the evidence for ${shortName(e.label)}`;
      Object.assign(box.dataset, { state: 'shown', cls: String(e.class), layer: e.layer, head: e.head, where: d.where, ms: e.ms.toFixed(0) });
      const where = d.max > 0 ? `strongest at the ${d.where}` : d.text;
      const lit = d.max > 0 ? ` ${Math.round(d.share * 100)}% of the image at half strength or more.` : '';
      say(`Evidence for “${shortName(e.label)}” in ${e.layer}: ${where}.`, '',
        `(${HEAD_NAMES[e.head]}, logit ${e.score.toFixed(2)})${lit} Bright = where the gradient of this class's score `
        + `weights the block's channels most. ${e.ms.toFixed(0)} ms on ${engine()}.`);
    } catch (err) {
      if (mine !== seq) return;
      box.dataset.state = 'error';
      const whose = triage(err);
      if (whose === 'cancelled') { setOn(false); return; }
      say(`No explanation: ${err.message}`, 'error');
      if (whose === 'recover') recover(err);
    }
  }

  function choose(index) {
    let opt = [...classSel.options].find((o) => Number(o.value) === index);
    if (!opt) {
      classSel.querySelector('option.found')?.remove();
      opt = new Option(`${shortName(report.labels[index])} (#${index})`, String(index));
      opt.className = 'found';
      classSel.append(opt);
    }
    classSel.value = String(index);
  }

  toggle.addEventListener('click', () => { setOn(!on); run(); });
  for (const sel of [classSel, blockSel]) sel.addEventListener('change', () => { blockSel.dataset.chosen = '1'; setOn(true); run(); });
  headSel.addEventListener('change', () => { fillBlocks(); setOn(true); run(); });
  /** Several classes answer to what was typed: one button each, the user picks. */
  function offerChoices(text, choices) {
    status.className = 'note error';
    const lead = document.createElement('span');
    lead.className = 'lead';
    lead.textContent = `Several classes are called “${text}”: which one?`;
    const buttons = choices.map((c) => {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'class-choice';
      b.dataset.index = String(c.index);
      b.textContent = `${c.label} (#${c.index})`;
      b.addEventListener('click', () => { find.value = ''; choose(c.index); setOn(true); run(); });
      return b;
    });
    status.replaceChildren(lead, ...buttons);
  }

  find.addEventListener('change', () => {
    const text = find.value;
    if (!text.trim() || !report) return;
    const found = lookupClass(report.labels, text);
    if ('choices' in found) { offerChoices(text.trim(), found.choices); return; }
    if ('none' in found) { say(`No class is called “${text}”.`, 'error'); return; }
    find.value = '';
    choose(found.index);
    setOn(true);
    run();
  });

  return {
    /** A (new) model: its labels, blocks and explainable heads. */
    setReport(r) {
      report = r;
      const list = $('explain-labels');
      list.replaceChildren(...r.labels.map((l, i) => new Option(`${shortName(l)} (#${i})`)));
      headSel.replaceChildren(...heads().map((h) => new Option(HEAD_NAMES[h.head], h.head)));
      $('explain-head-label').hidden = heads().length < 2;
      delete blockSel.dataset.chosen;
      fillBlocks();
      this.clear();
    },
    /** A new classification: offer its top-5, and explain its top-1 if the view is on. */
    setResult(top) {
      classSel.replaceChildren(...top.map((p) => new Option(`${shortName(p.label)} (${(p.prob * 100).toFixed(1)}%)`, String(p.index))));
      box.hidden = false;
      toggle.disabled = false;
      run();
    },
    /** Explain this class (a click on a top-5 row). */
    explainClass(index) { choose(index); setOn(true); run(); },
    /** Nothing to explain (no image, or the model changed). */
    clear() {
      setOn(false);
      box.hidden = true;
      toggle.disabled = true;
      delete box.dataset.state;
    },
    /** The explorer drew on the shared overlay: the explanation is no longer shown. */
    overlayTaken() { if (on) setOn(false); },
  };
}
