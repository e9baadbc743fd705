// System status (/api/status) and chat groups (/api/groups). The status is shown field by
// field as the API gives it, with friendlier forms for the known ones; while WhatsApp is
// pairing, its QR code is drawn as the bridge drew it for a terminal (or its text is shown).

import { h, replace, duration, ago, listOf } from './util.js';
import { getJson } from './net.js';

let infoEl;
let qrCard;
let qrEl;
let groupsEl;
/** Called with the repositories the status names (the task form offers them). */
let onRepos = () => {};
/** Called with the daemon's version (the header shows it). */
let onVersion = () => {};

export function init(hooks = {}) {
  infoEl = document.getElementById('status-info');
  qrCard = document.getElementById('whatsapp-card');
  qrEl = document.getElementById('whatsapp-qr');
  groupsEl = document.getElementById('groups');
  onRepos = hooks.onRepos || onRepos;
  onVersion = hooks.onVersion || onVersion;
}

/** Reads the status only (the header and the task form need it on every page). */
export async function load() {
  const status = await getJson('/api/status');
  if (status && status.version) onVersion(status.version);
  const repos = listOf(status && status.repos, 'repos').map((r) => (typeof r === 'string' ? r : r.name || r.repo));
  onRepos(repos.filter(Boolean));
  return status;
}

export async function refresh() {
  const [status, groups] = await Promise.all([load(), getJson('/api/groups').catch(() => null)]);
  renderStatus(status || {});
  if (groups !== null) renderGroups(listOf(groups, 'groups'));
}

const LABELS = {
  uptime_s: 'uptime', uptime_ms: 'uptime', agents_running: 'agents running', max_agents: 'agent slots',
  started_at_ms: 'started', pid: 'process id', data_dir: 'data folder',
};

/** Friendlier forms of the fields /api/status is known to have. */
const KNOWN = {
  agents: (a) => `${a.running.length} of ${a.limit} running${a.running.length ? ` (${a.running.join(', ')})` : ''}` +
    (a.waiting ? `, ${a.waiting} waiting` : ''),
  actors: (a) => `${a.total}: ` + Object.entries(a.by_status || {}).map(([k, n]) => `${n} ${k}`).join(', '),
  web: (w) => (w.auth ? 'token required (WEB_TOKEN)' : 'no token (loopback only)'),
  whatsapp: (w) => [w.phase, w.me, w.last_error].filter(Boolean).join(' · ') || null,
};

function valueView(key, value) {
  if (value === null || value === undefined) return h('span', { class: 'muted' }, '–');
  if (KNOWN[key] && typeof value === 'object') {
    try {
      const text = KNOWN[key](value);
      if (text) return text;
    } catch {
      // An unexpected shape: shown field by field below.
    }
  }
  if (key === 'uptime_s') return duration(value * 1000);
  if (key.endsWith('_ms') && key.includes('uptime')) return duration(value);
  if (key.endsWith('_at_ms') || key === 'at_ms') return ago(value);
  if (typeof value === 'boolean') return value ? 'yes' : 'no';
  if (Array.isArray(value)) {
    if (!value.length) return h('span', { class: 'muted' }, 'none');
    return h('ul', { class: 'plain' }, value.map((v) => h('li', {}, typeof v === 'object' ? summary(v) : String(v))));
  }
  if (typeof value === 'object') {
    const entries = Object.entries(value).filter(([k]) => k !== 'qr');
    const list = h('dl', { class: 'kv nested' }, entries
      .map(([k, v]) => [h('dt', {}, LABELS[k] || k.replaceAll('_', ' ')), h('dd', {}, valueView(k, v))]));
    // Long blocks (the store's counters) stay folded until asked for.
    return entries.length > 5 ? h('details', {}, h('summary', {}, `${entries.length} figures`), list) : list;
  }
  return String(value);
}

/** One line for an object in a list (a repository, a group). */
function summary(obj) {
  const name = obj.name || obj.repo || obj.chat || obj.id || obj.path;
  const rest = Object.entries(obj).filter(([k, v]) => v !== null && typeof v !== 'object' && v !== name)
    .map(([k, v]) => `${k.replaceAll('_', ' ')}: ${v}`);
  return [name, ...rest].filter((x) => x !== undefined).join(' · ');
}

/** The pairing QR code, wherever the status keeps it. */
function findQr(status) {
  const wa = status.whatsapp || {};
  const qr = wa.qr ?? status.whatsapp_qr ?? status.qr ?? null;
  if (!qr) return null;
  if (typeof qr === 'string') return { code: qr };
  return qr;
}

function renderStatus(status) {
  replace(infoEl, Object.entries(status).map(([key, value]) => [
    h('dt', {}, LABELS[key] || key.replaceAll('_', ' ')),
    h('dd', { 'data-key': key }, valueView(key, value)),
  ]));
  const qr = findQr(status);
  qrCard.hidden = !qr;
  if (!qr) return;
  const drawn = qr.image || qr.svg || qr.data_url;
  const view = drawn
    ? h('img', { src: drawn.startsWith('<svg') ? `data:image/svg+xml;utf8,${encodeURIComponent(drawn)}` : drawn, alt: 'WhatsApp pairing QR code' })
    : h('pre', { class: qr.terminal ? 'qr-drawing' : 'qr-code' }, qr.terminal || qr.code);
  replace(qrEl, view, qr.at_ms ? h('p', { class: 'muted' }, `received ${ago(qr.at_ms)}; WhatsApp renews it every 20 s or so`) : null,
    !qr.terminal && !drawn ? h('p', { class: 'muted' }, 'Encode this text as a QR code to pair.') : null);
}

/** One row per chat group: `{id, group: {chat, title, phase, pending, has_session}, actor}`. */
function renderGroups(groups) {
  if (!groups.length) {
    replace(groupsEl, h('p', { class: 'empty' }, 'No registered chats.'));
    return;
  }
  const columns = ['chat', 'title', 'phase', 'waiting messages', 'session', 'actor', 'restarts'];
  const cells = (g) => {
    const group = g.group || {};
    const actor = g.actor || {};
    return [group.chat || g.id, group.title, group.phase, group.pending,
      group.has_session === undefined ? null : group.has_session, actor.status, actor.restarts];
  };
  replace(groupsEl, h('div', { class: 'table-wrap' }, h('table', { class: 'table' },
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', {}, c)))),
    h('tbody', {}, groups.map((g) => h('tr', { 'data-chat': g.id || '' },
      cells(g).map((v, i) => h('td', { 'data-label': columns[i] }, valueView(columns[i], v)))))))));
}
