// Pure decisions of the page's side of the service worker (www/ui/offline.js wires them; sw.js
// is the service worker). Tested with `node --test`.

/** The reload flag (sessionStorage): the page reloaded once to run under the service worker. */
export const RELOAD_FLAG = 'googlenet-sw-isolation-reload';

/** The build a service worker serves, from its script URL (`sw.js?v=<id>`; '' without an id). */
export function versionOf(scriptURL) {
  try { return new URL(scriptURL).searchParams.get('v') || ''; } catch { return ''; }
}

/**
 * What the page does about cross-origin isolation before it starts the model:
 * 'go' (start now), 'reload' (once: a service worker now controls the page and adds the
 * headers the host did not send), or 'wait' (for the service worker to take control).
 * After one reload the page carries on whatever it gets (never a reload loop): the badge then
 * says the CPU engine runs on one thread because the page is not isolated.
 */
export function isolationStep({ isolated, canRegister, controlled, reloadedBefore }) {
  if (isolated || !canRegister || reloadedBefore) return 'go';
  return controlled ? 'reload' : 'wait';
}

/**
 * An update found (a service worker of another build installed and waiting while another one
 * controls the page): take it over now (the page reloads) only while the user has not done
 * anything yet; otherwise offer a reload. A first install (nothing controls the page yet) takes
 * over by itself, with no reload.
 */
export function updateStep({ waiting, controlled, pageVersion, waitingVersion, touched }) {
  if (!waiting || !controlled || waitingVersion === pageVersion) return 'none';
  return touched ? 'offer' : 'reload';
}

/** The line under the weights: what is kept for offline use. */
export function offlineText(s) {
  if (s.state === 'ready') {
    return s.reason === 'custom'
      ? 'available offline, with these weights and the default ones (another address with ?weights= replaces these; the default weights always stay)'
      : 'available offline';
  }
  if (s.state === 'saving') return 'saving for offline use…';
  if (s.state === 'failed') return `not available offline: ${s.reason}`;
  return '';
}
