// Top-5 list with probability bars, aux-head predictions, timings.
import { percent } from '../lib/format.js';

export function renderTop(list, top) {
  list.replaceChildren(
    ...top.map((p) => {
      const li = document.createElement('li');
      li.dataset.label = p.label;
      li.dataset.prob = String(p.prob);
      li.dataset.index = String(p.index);
      const name = document.createElement('span');
      name.className = 'label';
      name.textContent = p.label.split(',')[0];
      name.title = `${p.label} (class ${p.index})`;
      const bar = document.createElement('span');
      bar.className = 'bar';
      bar.style.setProperty('--p', String(p.prob));
      const val = document.createElement('span');
      val.className = 'prob';
      val.textContent = percent(p.prob);
      li.append(name, bar, val);
      return li;
    }),
  );
}

export function renderAux(el, result, report) {
  el.replaceChildren();
  const h = document.createElement('h3');
  h.textContent = 'Auxiliary classifiers';
  el.append(h);
  if (!report.has_aux || report.aux_fresh || !result.aux1) {
    const p = document.createElement('p');
    p.className = 'note';
    p.textContent = report.has_aux
      ? 'These weights have no trained auxiliary heads (the BVLC release ships without them), so their output would be noise and is not shown. They exist only to help training: fine-tune to train them.'
      : 'This model was built without auxiliary heads.';
    el.append(p);
    return;
  }
  for (const [name, top, where] of [['aux1', result.aux1, 'after 4a'], ['aux2', result.aux2, 'after 4d']]) {
    const box = document.createElement('div');
    box.className = 'aux-head';
    const t = document.createElement('h4');
    t.textContent = `${name} (${where})`;
    const ol = document.createElement('ol');
    ol.className = 'top5 small';
    renderTop(ol, top.slice(0, 3));
    box.append(t, ol);
    el.append(box);
  }
}
