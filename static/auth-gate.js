// Access to a gateway that requires credentials (docs/security.md): when the
// gateway answers 401, ask for an API key, keep it in sessionStorage (this
// tab only, never in the URL) and hand it to presence-client.js, which sends
// it as a bearer header and opens streams with one-time tickets. With auth
// off (the demo on loopback) nothing is asked.

import { getJson, setAuthToken } from './presence-client.js';

const STORAGE_KEY = 'presence-gateway-token';

/** Resolves once the gateway lets this page read; asks for a key when needed. */
export async function ensureAccess(baseUrl = '') {
  const saved = sessionStorage.getItem(STORAGE_KEY);
  if (saved) setAuthToken(saved);
  let problem = '';
  for (;;) {
    try {
      await getJson(baseUrl, '/api/v1/presence-definitions');
      return;
    } catch (e) {
      // Anything but a credential problem is the page's to show.
      if (e.status !== 401 && e.status !== 403) return;
      if (sessionStorage.getItem(STORAGE_KEY)) {
        problem = e.status === 403 ? 'This key may not read agents.' : 'The gateway refused this key.';
      }
    }
    const key = await askForKey(problem);
    sessionStorage.setItem(STORAGE_KEY, key);
    setAuthToken(key);
  }
}

/** Forgets the key of this tab (e.g. a "sign out" link). */
export function forgetKey() {
  sessionStorage.removeItem(STORAGE_KEY);
  setAuthToken(null);
}

function askForKey(problem) {
  return new Promise((resolve) => {
    const overlay = document.createElement('div');
    overlay.id = 'auth-gate';
    overlay.setAttribute('role', 'dialog');
    overlay.setAttribute('aria-modal', 'true');
    overlay.style.cssText = 'position:fixed;inset:0;display:flex;align-items:center;justify-content:center;'
      + 'background:rgba(5,8,12,.85);z-index:1000;font:14px system-ui,sans-serif;color:#e6edf3';
    overlay.innerHTML = `
      <form style="background:#111822;border:1px solid #2a3441;border-radius:10px;padding:24px;min-width:340px">
        <h2 style="margin:0 0 8px;font-size:18px">This gateway needs an API key</h2>
        <p style="margin:0 0 14px;color:#9aa7b4">Ask your administrator for a viewer key. It is kept for this tab only.</p>
        <label for="auth-key" style="display:block;margin-bottom:6px">API key</label>
        <input id="auth-key" type="password" autocomplete="off" required
          style="width:100%;box-sizing:border-box;padding:8px;border-radius:6px;border:1px solid #2a3441;background:#0b1017;color:inherit">
        <p id="auth-problem" role="alert" style="color:#ff7b72;min-height:1.2em;margin:8px 0"></p>
        <button type="submit" style="padding:8px 16px;border-radius:6px;border:0;background:#58a6ff;color:#0b1017;font-weight:600">Continue</button>
      </form>`;
    overlay.querySelector('#auth-problem').textContent = problem;
    overlay.querySelector('form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const key = overlay.querySelector('#auth-key').value.trim();
      if (!key) return;
      overlay.remove();
      resolve(key);
    });
    document.body.appendChild(overlay);
    overlay.querySelector('#auth-key').focus();
  });
}
