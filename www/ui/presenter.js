// Presenter mode (`?present=1`, the Present button): the page restyled for a projector — big
// image, big top-5, one Inception block at a time at full width — driven from the keyboard:
// ←/→ the previous/next block (3a … 5b), space the next image (a dropped or picked folder,
// else the sample gallery), E the explanation (the result column's #explain-toggle when there
// is one), Esc back to the page. It restyles the page rather than copying it, so whatever the
// result column shows (the explanation too) is what the room sees.
import { renderBlockView, blockName } from './explorer.js';
import { step, counterText, imagesFromEntries, imagesFromFiles } from '../lib/folder.js';
import { shape } from '../lib/format.js';

/**
 * @param {object} o
 * @param {(id: string) => HTMLElement} o.$
 * @param {URLSearchParams} o.params
 * @param {(read: () => Promise<ArrayBuffer>, what: string) => Promise<void>} o.takePhoto  the page's new photo (read, then classified, unless a newer one came meanwhile)
 * @param {(index: number, opts: {overlay: boolean}) => Promise<object>} o.loadBlock  a block's live view (Req.BLOCK)
 * @param {() => object|null} o.summary  the loaded model's summary (null while loading)
 * @param {() => boolean} o.hasImage  whether an image has been classified by this model
 */
export function setupPresenter({ $, params, takePhoto, loadBlock, summary, hasImage }) {
  let on = false;
  let block = 0;
  /** The images space steps through: a folder ({path, file}) or, without one, the gallery. */
  let folder = null;
  let at = -1;
  let run = 0;
  let noteTimer = 0;

  function note(text) {
    const p = $('p-note');
    p.textContent = text;
    p.hidden = !text;
    clearTimeout(noteTimer);
    if (text) noteTimer = setTimeout(() => { p.hidden = true; }, 4000);
  }

  function setUrl() {
    const url = new URL(location.href);
    if (on) url.searchParams.set('present', '1'); else url.searchParams.delete('present');
    history.replaceState(null, '', url);
  }

  function enter({ fullscreen = false } = {}) {
    if (!on) {
      on = true;
      document.body.classList.add('presenting');
      document.body.dataset.presenting = '1';
      $('presenter-bar').hidden = false;
      $('presenter-block').hidden = false;
      // A block's heat from the explorer is not this view's; an explanation stays (E toggles it).
      if ($('overlay').dataset.kind !== 'explain') $('overlay').classList.remove('shown');
      document.querySelector('.tab[data-view="classify"]')?.click();
      setUrl();
    }
    document.activeElement?.blur?.();
    if (fullscreen) document.documentElement.requestFullscreen?.().catch(() => {});
    update();
  }

  function leave() {
    if (!on) return;
    on = false;
    document.body.classList.remove('presenting');
    delete document.body.dataset.presenting;
    $('presenter-bar').hidden = true;
    $('presenter-block').hidden = true;
    note('');
    setUrl();
    if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
  }

  /** Shows the current block: its name at once, its activations once the model answers. */
  async function update() {
    if (!on) return;
    const s = summary();
    const view = $('p-block-view');
    const name = $('p-block-name');
    if (!s) {
      name.textContent = 'loading the model…';
      $('p-block-shape').textContent = '';
      view.replaceChildren();
      return;
    }
    block = Math.min(Math.max(block, 0), s.blocks.length - 1);
    const b = s.blocks[block];
    name.textContent = blockName(b);
    name.dataset.block = b.name;
    $('p-block-shape').textContent = `${block + 1} of ${s.blocks.length} · ${shape(b.input)} → ${shape(b.output)}`;
    $('p-prev').disabled = block === 0;
    $('p-next').disabled = block === s.blocks.length - 1;
    const mine = ++run;
    if (!hasImage()) {
      const p = document.createElement('p');
      p.className = 'p-empty';
      p.textContent = 'Press space to classify a sample image, or drop a folder of images, to see this block at work.';
      view.replaceChildren(p);
      return;
    }
    view.classList.add('loading');
    try {
      const v = await loadBlock(block, { overlay: false }); // (the view shows where it responds)
      if (mine === run && on) renderBlockView(view, b, v);
    } catch (e) {
      if (mine !== run || e.stale) return; // (a newer photo's answer redraws it)
      const p = document.createElement('p');
      p.className = 'p-empty';
      p.textContent = String(e.message || e);
      view.replaceChildren(p);
    } finally {
      if (mine === run) view.classList.remove('loading');
    }
  }

  function moveBlock(delta) {
    const s = summary();
    if (!s) return;
    const next = Math.min(Math.max(block + delta, 0), s.blocks.length - 1);
    if (next !== block) { block = next; update(); }
  }

  /** The next (or previous) image of the folder, or of the gallery. */
  async function nextImage(delta = 1) {
    const items = folder || [...document.querySelectorAll('#gallery .sample img')].map((img) => ({ path: img.alt, url: img.src }));
    if (!items.length) { note('No images to step through: drop a folder of images here.'); return; }
    at = step(at, items.length, delta);
    const item = items[at];
    $('p-counter').textContent = counterText(at, items.length, item.path);
    $('p-counter').dataset.index = String(at);
    await takePhoto(() => (item.file ? item.file.arrayBuffer() : fetch(item.url).then((r) => {
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      return r.arrayBuffer();
    })), item.path);
  }

  function useFolder(items, what) {
    if (!items.length) { note(`No images in ${what}.`); return; }
    folder = items;
    at = -1;
    enter();
    nextImage();
  }

  function explain() {
    const toggle = document.querySelector('#explain-toggle, [data-testid="explain-toggle"]');
    if (toggle && !toggle.disabled) toggle.click();
    else note('explanation not available yet');
  }

  window.addEventListener('keydown', (e) => {
    if (!on || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.target instanceof HTMLElement && e.target.closest('input, select, textarea, [contenteditable="true"]')) return;
    if (e.key === ' ') { e.preventDefault(); if (!e.repeat) nextImage(e.shiftKey ? -1 : 1); }
    else if (e.key === 'ArrowRight') { e.preventDefault(); moveBlock(1); }
    else if (e.key === 'ArrowLeft') { e.preventDefault(); moveBlock(-1); }
    else if (e.key === 'e' || e.key === 'E') explain();
    else if (e.key === 'Escape') leave();
  });

  // A dropped folder (anywhere on the page) or, in presenter mode, any dropped images: stepped
  // through with space. Before the page's own drop handler, which takes one file.
  window.addEventListener('drop', (e) => {
    const items = [...(e.dataTransfer?.items || [])].filter((i) => i.kind === 'file');
    // Entries must be taken during the event.
    const entries = items.map((i) => i.webkitGetAsEntry?.() || null);
    const hasFolder = entries.some((x) => x?.isDirectory);
    if (!hasFolder && !(on && items.length)) return;
    e.preventDefault();
    e.stopPropagation();
    $('drop-zone').classList.remove('hover');
    const files = [...e.dataTransfer.files];
    const read = entries.every(Boolean) ? imagesFromEntries(entries) : Promise.resolve(imagesFromFiles(files));
    read.then((list) => useFolder(list, 'what was dropped'));
  }, { capture: true });

  $('present-btn').addEventListener('click', () => enter({ fullscreen: true }));
  $('p-exit').addEventListener('click', leave);
  $('p-prev').addEventListener('click', () => moveBlock(-1));
  $('p-next').addEventListener('click', () => moveBlock(1));
  $('p-folder').addEventListener('change', (e) => {
    useFolder(imagesFromFiles(e.target.files), 'that folder');
    e.target.value = '';
  });
  // Leaving full screen (Esc there never reaches the page) leaves presenter mode too.
  document.addEventListener('fullscreenchange', () => { if (!document.fullscreenElement) leave(); });

  if (params.get('present') === '1') enter();
  return { update, active: () => on };
}
