// Agent desktop (desktop.html?agent=ID): the agent's own presence and routing
// status with ticking timers, a guarded presence change (PATCH with If-Match),
// and the interaction-context panel fed by `interaction` stream messages.

import {
  createPresenceClient, presenceKey, fetchPresenceDefinitions, getJson, setPresence,
  refusedBy, PRESENCE_MESSAGE_MAX_CHARS,
} from './presence-client.js';
import { ensureAccess } from './auth-gate.js';

const SYS_LABEL = {
  AVAILABLE: 'Available', ON_QUEUE: 'On Queue', BUSY: 'Busy', MEETING: 'Meeting', TRAINING: 'Training',
  AWAY: 'Away', BREAK: 'Break', MEAL: 'Meal', IDLE: 'Idle', OFFLINE: 'Offline', UNKNOWN: 'Unknown',
};
const SYS_ORDER = ['AVAILABLE', 'ON_QUEUE', 'BUSY', 'AWAY', 'BREAK', 'MEAL', 'MEETING', 'TRAINING', 'IDLE', 'OFFLINE'];
const ROUTING_LABEL = { IDLE: 'Idle', INTERACTING: 'Interacting', COMMUNICATING: 'Communicating', NOT_RESPONDING: 'Not responding', OFF_QUEUE: 'Off queue' };
/**
 * What went wrong, by the gateway's error code (docs/writes.md), in words an
 * agent understands. Who refused is said separately (see refusalText).
 */
const CODE_TEXT = {
  transition_refused: 'This change is not allowed right now by your organisation’s rules.',
  precondition_failed: 'Your presence changed since this page loaded it.',
  invalid_presence: 'That presence cannot be chosen.',
  invalid_message: `The message is too long: at most ${PRESENCE_MESSAGE_MAX_CHARS} characters.`,
  agent_not_found: 'This agent is not known.',
  not_ready: 'The gateway has not finished loading your organisation yet; try again in a moment.',
  idempotency_in_progress: 'The same change is still being made.',
  idempotency_key_reused: 'This request was already used for another change.',
  unauthenticated: 'You are not signed in to the gateway.',
  forbidden: 'You are not allowed to change this presence.',
  genesys_refused: 'Genesys Cloud refused this change of presence.',
  genesys_forbidden: 'Genesys Cloud does not allow the gateway to change presences (permission presence:userPresence:edit).',
  rate_limited: 'Genesys Cloud is busy (rate limit); your presence was not changed. Try again in a moment.',
  upstream_unavailable: 'The gateway cannot reach Genesys Cloud right now; your presence was not changed.',
  not_confirmed: 'Genesys Cloud did not confirm the change; check your presence.',
};
/** Fallbacks by HTTP status for codes this page does not know. */
const STATUS_TEXT = {
  400: 'The request was not understood.',
  401: CODE_TEXT.unauthenticated,
  403: CODE_TEXT.forbidden,
  404: CODE_TEXT.agent_not_found,
  429: 'Too many changes right now; try again in a moment.',
};

/** A refusal in words that name who refused: the gateway's own rules, or Genesys Cloud. */
function refusalText(err) {
  const words = CODE_TEXT[err.code] || STATUS_TEXT[err.status] || `The change failed (HTTP ${err.status}).`;
  const who = refusedBy(err.code);
  // The reason repeats what CODE_TEXT says for most gateway codes; keep it
  // where it adds facts (a policy rule, Genesys's own message).
  const detail = err.reason && (who !== 'gateway' || err.code === 'transition_refused' || !CODE_TEXT[err.code]) ? ` (${err.reason})` : '';
  const prefix = who === 'gateway' ? 'Refused by the gateway (Genesys Cloud was not asked): ' : '';
  return `${prefix}${words}${detail} [${err.code || `HTTP ${err.status}`}]`;
}

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const agentId = params.get('agent');
const baseUrl = params.get('gateway') || '';

/** ETag of the last GET of this agent, and the version it belongs to. */
let etag = null;
let etagVersion = null;
let me = null;
let definitions = [];
let refreshTimer = null;

const client = createPresenceClient({
  baseUrl,
  transport: params.get('transport') === 'ws' ? 'ws' : 'sse',
  filter: { agent: agentId, interactions: true },
  autoStart: false,
  onSnapshot: (agents) => { setMe(agents.get(agentId) || me); },
  onDelta: (changes, msg) => {
    for (const c of changes) if (c.id === agentId) setMe(c);
    if (Array.isArray(msg.removed) && msg.removed.includes(agentId)) showNoAgent(`The agent “${agentId}” is no longer in the directory.`);
  },
  onInteraction: (msg) => { if (msg.agentId === agentId) renderInteractions(msg.interactions || []); },
  onStatus: () => updateFreshness(),
  onConnectionChange: () => updateFreshness(),
});
window.__presence = client;

function setMe(a) {
  me = a;
  renderMe();
  // The page shows this version now, so the write guard may follow it:
  // fetch the ETag that belongs to it (If-Match protects against changes the
  // agent has not seen, not against the ones on screen).
  if (a && String(a.version) !== String(etagVersion)) {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(loadAgent, 250);
  }
}

async function loadAgent() {
  try {
    const { body, etag: tag } = await getJson(baseUrl, `/api/v1/agents/${encodeURIComponent(agentId)}`);
    etag = tag || (body && body.version !== undefined ? `"${body.version}"` : null);
    etagVersion = body && body.version;
    if (!me || (body && body.version !== undefined && String(body.version) !== String(me.version))) {
      me = body;
      renderMe();
    }
    $('fatal').hidden = true;
    return body;
  } catch (e) {
    if (e.status === 404) showNoAgent(`No agent with id “${agentId}” is known to the gateway. Check the address: it should be /desktop.html?agent=<agent id>.`);
    return null;
  }
}

/** This page has no agent to show: say so, and offer nothing to change. */
let noAgent = false;
function showNoAgent(text) {
  noAgent = true;
  me = null;
  client.close();
  showFatal(text);
  document.querySelectorAll('.card').forEach((c) => { c.hidden = true; });
  $('fresh').hidden = true;
  $('agent-name').textContent = 'Agent desktop';
  document.title = 'Agent desktop — no agent';
}

function showFatal(text) {
  $('fatal').textContent = text;
  $('fatal').hidden = false;
}

function fmtDur(ms) {
  if (!Number.isFinite(ms)) return '–';
  const s = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

function isSecondary(p) {
  if (typeof p.primary === 'boolean') return !p.primary;
  const d = definitions.find((x) => x.id === p.definitionId);
  if (d) return d.primary === false;
  const sys = SYS_LABEL[String(p.systemPresence || '').toUpperCase()];
  return !!(p.label && sys && p.label.toLowerCase() !== sys.toLowerCase());
}

function renderMe() {
  if (!me) return;
  const p = me.presence || {};
  const key = presenceKey(me);
  $('agent-name').textContent = me.name || agentId;
  document.title = `${me.name || agentId} — ${p.label || key}`;
  const card = $('me');
  card.style.setProperty('--pc', `var(--p-${key in SYS_LABEL ? key : 'UNKNOWN'})`);
  $('my-sw').classList.toggle('secondary', isSecondary(p));
  $('my-label').textContent = p.label || SYS_LABEL[key] || key;
  $('my-sys').textContent = SYS_LABEL[key] || key;
  $('my-message').textContent = p.message ? `“${p.message}”` : '';
  const rs = (me.routingStatus && me.routingStatus.status) || 'OFF_QUEUE';
  const badge = $('my-routing');
  badge.textContent = ROUTING_LABEL[rs] || rs;
  badge.style.setProperty('--rc', `var(--r-${rs})`);
  badge.classList.toggle('solid', rs !== 'OFF_QUEUE' && rs !== 'IDLE');
  $('my-division').textContent = me.division ? me.division.name : '';
  markCurrent();
  tick();
}

function tick() {
  const now = Date.now();
  if (me) {
    $('my-time').textContent = fmtDur(now - Date.parse(me.presence && me.presence.since));
    $('my-routing-time').textContent = fmtDur(now - Date.parse(me.routingStatus && me.routingStatus.since));
  }
  for (const el of document.querySelectorAll('[data-since]')) el.textContent = fmtDur(now - Date.parse(el.dataset.since));
  updateFreshness();
}

/** System presences an agent may choose (`[board] desktop_presences`, GET /api/v1/board); null until read. */
let offered = null;
const DEFAULT_OFFERED = SYS_ORDER.filter((k) => k !== 'IDLE' && k !== 'OFFLINE');

function renderChoices() {
  const box = $('choices');
  box.innerHTML = '';
  const allowed = offered || DEFAULT_OFFERED;
  const active = definitions.filter((d) => !d.deactivated && allowed.includes(d.systemPresence));
  active.sort((x, y) => (SYS_ORDER.indexOf(x.systemPresence) - SYS_ORDER.indexOf(y.systemPresence)) || ((y.primary !== false) - (x.primary !== false)) || x.label.localeCompare(y.label));
  for (const d of active) {
    const lab = document.createElement('label');
    lab.className = 'choice';
    lab.style.setProperty('--pc', `var(--p-${d.systemPresence in SYS_LABEL ? d.systemPresence : 'UNKNOWN'})`);
    lab.dataset.id = d.id;
    lab.innerHTML = '<input type="radio" name="presence"><span class="sw"></span><span class="t"></span><span class="cur"></span>';
    const input = lab.querySelector('input');
    input.value = d.id;
    lab.querySelector('.sw').classList.toggle('secondary', d.primary === false);
    lab.querySelector('.t').textContent = d.label;
    if (d.primary === false) lab.title = `${d.label} (${SYS_LABEL[d.systemPresence] || d.systemPresence})`;
    box.appendChild(lab);
  }
  markCurrent();
}

function markCurrent() {
  const cur = me && me.presence && me.presence.definitionId;
  for (const lab of document.querySelectorAll('.choice')) {
    const isCur = lab.dataset.id === cur;
    lab.classList.toggle('current', isCur);
    lab.querySelector('.cur').textContent = isCur ? '(current)' : '';
  }
}

function showResult(kind, text, withReload) {
  const r = $('result');
  r.className = `result ${kind}`;
  r.textContent = text;
  if (withReload) {
    const b = document.createElement('button');
    b.type = 'button';
    b.textContent = 'Reload my state';
    b.addEventListener('click', async () => {
      await loadAgent();
      showResult('', 'Reloaded. Check your current presence, then choose again.');
    });
    r.appendChild(b);
  }
}

$('change').addEventListener('submit', async (e) => {
  e.preventDefault();
  const chosen = document.querySelector('input[name="presence"]:checked');
  if (!chosen) { showResult('err', 'Choose a presence first.'); return; }
  const def = definitions.find((d) => d.id === chosen.value);
  const btn = $('apply');
  btn.disabled = true;
  showResult('', 'Setting presence…');
  try {
    // The write guard follows the version on screen: when a change arrived
    // after the last write or load (e.g. the routing status Genesys sets
    // after a presence change) and its ETag refresh is still pending, fetch
    // it now rather than send an ETag the page no longer shows.
    if (!etag || (me && String(me.version) !== String(etagVersion))) await loadAgent();
    const { body, etag: tag } = await setPresence(baseUrl, agentId, { presence: chosen.value, message: $('message').value.trim(), etag });
    if (tag) { etag = tag; etagVersion = body && body.version; }
    showResult('ok', `Presence set to ${def ? def.label : chosen.value}.`);
    chosen.checked = false;
  } catch (err) {
    if (err.status === undefined) { showResult('err', `Could not reach the gateway (${err.message}).`); return; }
    showResult('err', refusalText(err), err.status === 412);
  } finally {
    btn.disabled = false;
  }
});

// ---- interaction context ----
function esc(s) { return String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]); }
function renderInteractions(list) {
  const box = $('interactions');
  if (!list.length) { box.innerHTML = '<p class="none">No active interaction</p>'; return; }
  box.innerHTML = list.map((ix) => {
    const flags = [
      ix.held ? '<span class="badge solid" style="--rc:var(--warn)">Held</span>' : '',
      ix.muted ? '<span class="badge" style="--rc:var(--warn)">Muted</span>' : '',
      ix.afterCallWork ? '<span class="badge" style="--rc:var(--p-MEETING)">After-call work</span>' : '',
      ix.wrapupRequired && !ix.wrapupCode ? '<span class="badge" style="--rc:var(--danger)">Wrap-up required</span>' : '',
    ].join('');
    const since = ix.connectedTime || ix.startTime;
    const dd = (k, v) => `<div><dt>${k}</dt><dd class="v">${v}</dd></div>`;
    const cust = ix.customer || {};
    return `<dl class="ix" data-conversation="${esc(ix.conversationId)}">
      <div class="head"><span>${esc(cap(ix.mediaType) || 'Interaction')}</span><span class="k">${esc(ix.direction || '')}</span><span class="badge" style="--rc:var(--accent)">${esc(ix.state || '')}</span><span class="flags">${flags}</span></div>
      ${dd('Queue', esc((ix.queue && (ix.queue.name || ix.queue.id)) || '—'))}
      ${dd('Customer', esc([cust.name, cust.ani].filter(Boolean).join(' · ') || '—'))}
      ${dd('Duration', since ? `<span data-since="${esc(since)}"></span>` : '—')}
      ${dd('Started', ix.startTime ? esc(new Date(ix.startTime).toLocaleTimeString([], { hour12: false })) : '—')}
      ${dd('External tag', esc(ix.externalTag || '—'))}
      ${dd('Wrap-up', esc(ix.wrapupCode || (ix.wrapupRequired ? 'required' : '—')))}
    </dl>`;
  }).join('');
  tick();
}
function cap(s) { return s ? s[0].toUpperCase() + s.slice(1) : s; }

// ---- freshness ----
let lastText = '';
function updateFreshness() {
  if (noAgent) return;
  const f = client.freshness();
  $('fresh').dataset.level = f.level;
  const ageS = Math.round(f.staleForMs / 1000);
  const text = { live: 'Live', stale: 'Data may be stale', reconnecting: 'Reconnecting…', connecting: 'Connecting…' }[f.level] || 'Disconnected';
  if (text !== lastText) { $('fresh-text').textContent = text; lastText = text; }
  $('fresh-age').textContent = f.level === 'live' || !f.staleForMs ? '' : `(${ageS} s)`;
  $('fresh').title = f.detail || '';
  document.body.classList.toggle('not-live', f.level !== 'live' && !!me);
}

// ---- message limit: the API's, in one place (presence-client.js) ----
const messageBox = $('message');
messageBox.maxLength = PRESENCE_MESSAGE_MAX_CHARS;
function showLimit() { $('message-limit').textContent = `${messageBox.value.length}/${PRESENCE_MESSAGE_MAX_CHARS}`; }
messageBox.addEventListener('input', showLimit);
showLimit();

// ---- start ----
if (!agentId) {
  showNoAgent('No agent chosen. Open this page with ?agent=<agent id> in the address.');
} else {
  // Credentials first: asked only when the gateway requires them. Then the
  // agent itself: an unknown id gets words, not presence choices.
  ensureAccess(baseUrl).then(async () => {
    const defs = fetchPresenceDefinitions(baseUrl);
    const board = getJson(baseUrl, '/api/v1/board')
      .then(({ body }) => { if (Array.isArray(body.desktopPresences)) offered = body.desktopPresences; })
      .catch(() => { /* the default list stands in */ });
    await loadAgent();
    if (noAgent) return;
    client.start();
    Promise.all([defs, board]).then(([d]) => { definitions = d; renderChoices(); renderMe(); })
      .catch((e) => showResult('err', `Could not load the presence choices (${e.message}).`));
  });
  setInterval(tick, 1000);
}
