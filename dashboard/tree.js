// The supervision tree, live: one element per actor (`[data-path]`), nested by path, updated
// in place from /api/actors. An actor flashes (class `flash`) when /api/events reports it
// failed, restarted, stopped or started anew, or when a refresh finds a new incarnation (a
// restart on request counts no restart, but its `started_at_ms` moves).

import { h, setText, duration, clock, toast, freshFilter } from './util.js';
import { getJson, postJson, pathSegment } from './net.js';

/** How long an actor keeps the `flash` class (the CSS animation runs as long). */
const FLASH_MS = 3000;
/** Events older than this when they arrive (a replay) are listed but flash nothing. */
const FRESH_EVENT_MS = 5000;
/** Lifecycle events kept in the side list. */
const EVENTS_KEPT = 100;

/** path → { li, parts, last: { handled, t, startedAt, restarts }, rate, flashTimer } */
const nodes = new Map();
const folded = new Set();
/** Events a reconnection replays again are skipped. */
const fresh = freshFilter();
let treeEl;
let eventsEl;
let filterEl;
let summaryEl;

export function init() {
  treeEl = document.getElementById('tree');
  eventsEl = document.getElementById('events');
  filterEl = document.getElementById('tree-filter');
  summaryEl = document.getElementById('tree-summary');
  filterEl.addEventListener('input', applyFilter);
}

/** Re-reads the actor list. */
export async function refresh() {
  const data = await getJson('/api/actors');
  const actors = Array.isArray(data) ? data : (data && data.actors) || [];
  render(actors);
}

function render(actors) {
  const now = performance.now();
  const seen = new Set();
  const counts = { running: 0, restarting: 0, parked: 0, stopped: 0 };
  for (const actor of actors) {
    seen.add(actor.path);
    counts[actor.status] = (counts[actor.status] || 0) + 1;
    update(upsert(actor), actor, now);
  }
  for (const [path, node] of nodes) {
    if (!seen.has(path)) {
      nodes.delete(path);
      // Children that are still listed move up before their parent's element goes.
      for (const child of node.parts.children.querySelectorAll(':scope > li')) {
        if (nodes.has(child.dataset.path)) attach(child, child.dataset.path);
      }
      node.li.remove();
    }
  }
  for (const node of nodes.values()) {
    node.li.classList.toggle('has-children', node.parts.children.childElementCount > 0);
  }
  const parts = [`${actors.length} actors`];
  for (const [status, n] of Object.entries(counts)) if (n && status !== 'running') parts.push(`${n} ${status}`);
  setText(summaryEl, parts.join(' · '));
  applyFilter();
}

/** The nearest listed ancestor's child list, or the top of the tree. */
function containerFor(path) {
  let cut = path.lastIndexOf('/');
  while (cut > 0) {
    const parent = nodes.get(path.slice(0, cut));
    if (parent) return parent.parts.children;
    cut = path.lastIndexOf('/', cut - 1);
  }
  return treeEl;
}

/** Puts `li` into its container, in path order among its siblings. */
function attach(li, path) {
  const container = containerFor(path);
  const next = [...container.children].find((c) => c !== li && c.dataset.path > path);
  container.insertBefore(li, next || null);
}

function upsert(actor) {
  const known = nodes.get(actor.path);
  if (known) return known;
  const path = actor.path;
  const name = path.slice(path.lastIndexOf('/') + 1) || path;
  const parts = {
    fold: h('button', { class: 'fold', type: 'button', title: 'Fold or unfold', 'aria-label': 'Fold' }),
    name: h('span', { class: 'name', title: path }, name),
    kind: h('span', { class: 'kind' }),
    status: h('span', { class: 'chip status' }),
    breaker: h('span', { class: 'chip breaker', hidden: true }),
    depth: h('span', { class: 'metric depth', title: 'Mailbox depth' }),
    rate: h('span', { class: 'metric rate', title: 'Messages handled per second' }),
    restarts: h('span', { class: 'metric restarts', title: 'Restarts' }),
    snapshot: h('span', { class: 'metric snapshot', title: 'Age of the last snapshot' }),
    up: h('span', { class: 'metric up', title: 'Time since this incarnation started' }),
    failure: h('div', { class: 'failure', hidden: true }),
    breakerButton: h('button', { type: 'button', class: 'small' }),
    children: h('ul', { class: 'children' }),
  };
  const restart = h('button', { type: 'button', class: 'small', title: `Restart ${path}` }, 'restart');
  restart.addEventListener('click', () => act(`/api/actors/${pathSegment(path)}/restart`, undefined, `Restarting ${name}`));
  parts.breakerButton.addEventListener('click', () => {
    const state = parts.breakerButton.dataset.state;
    // Opening parks the actor (and whatever it supervises) until someone closes it again.
    if (state === 'open' && !window.confirm(`Open the breaker of ${path}? It stops until the breaker is closed.`)) return;
    act(`/api/breakers/${pathSegment(path)}`, { state }, `Breaker of ${name}: ${state}`);
  });
  parts.fold.addEventListener('click', () => {
    if (folded.has(path)) folded.delete(path);
    else folded.add(path);
    li.classList.toggle('folded', folded.has(path));
  });
  // The root has no supervisor to restart it or to hold its breaker.
  const root = !path.includes('/');
  const row = h('div', { class: 'row' },
    parts.fold, parts.name, parts.kind, parts.status, parts.breaker,
    h('span', { class: 'metrics' }, parts.depth, parts.rate, parts.restarts, parts.up, parts.snapshot),
    root ? null : h('span', { class: 'actions' }, restart, parts.breakerButton));
  // A tap on a row shows its buttons (phones have no hover).
  row.addEventListener('click', (e) => {
    if (!e.target.closest('button')) li.classList.toggle('selected');
  });
  const li = h('li', { class: 'actor', 'data-path': path }, row, parts.failure, parts.children);
  const node = { li, parts, last: null, rate: 0, flashTimer: null };
  nodes.set(path, node);
  attach(li, path);
  // A parent listed after its children (it was missing before): adopt them.
  for (const [other, n] of nodes) {
    if (other !== path && other.startsWith(`${path}/`) && containerFor(other) === parts.children) {
      attach(n.li, other);
    }
  }
  return node;
}

function update(node, actor, now) {
  const { li, parts } = node;
  const last = node.last;
  const startedAt = actor.started_at_ms || 0;
  if (last) {
    const seconds = (now - last.t) / 1000;
    const delta = startedAt === last.startedAt ? actor.handled - last.handled : actor.handled;
    if (seconds > 0.2 && delta >= 0) node.rate = node.rate * 0.4 + (delta / seconds) * 0.6;
    // A restart, or a new incarnation started on request (which counts no restart).
    if (actor.restarts > last.restarts || startedAt !== last.startedAt) flash(actor.path);
  }
  if (!last || now - last.t > 200) {
    node.last = { handled: actor.handled, t: now, startedAt, restarts: actor.restarts };
  }
  li.dataset.status = actor.status;
  li.dataset.restarts = actor.restarts;
  li.dataset.started = startedAt;
  li.dataset.kind = actor.kind;
  if (node.statusClass !== `status-${actor.status}`) {
    if (node.statusClass) li.classList.remove(node.statusClass);
    node.statusClass = `status-${actor.status}`;
    li.classList.add(node.statusClass);
  }
  li.classList.toggle('folded', folded.has(actor.path));
  setText(parts.kind, actor.kind);
  parts.kind.hidden = actor.kind === parts.name.textContent;
  setText(parts.status, actor.status);
  parts.status.dataset.status = actor.status;
  const breaker = actor.breaker;
  parts.breaker.hidden = !breaker;
  setText(parts.breaker, breaker ? `breaker ${breaker.replace('_', '-')}` : '');
  if (breaker) parts.breaker.dataset.breaker = breaker;
  // Any actor's breaker can be forced; one that never moved is reported as none (closed).
  const open = breaker === 'open' || breaker === 'forced_open';
  parts.breakerButton.dataset.state = open ? 'closed' : 'open';
  setText(parts.breakerButton, open ? 'close breaker' : 'open breaker');
  setText(parts.depth, `✉ ${actor.mailbox_depth}`);
  parts.depth.classList.toggle('hot', actor.mailbox_depth > 10);
  setText(parts.rate, `${node.rate < 10 ? node.rate.toFixed(1) : Math.round(node.rate)}/s`);
  setText(parts.restarts, `↻ ${actor.restarts}`);
  parts.restarts.classList.toggle('hot', actor.restarts > 0);
  setText(parts.snapshot, actor.snapshot_age_ms === null || actor.snapshot_age_ms === undefined
    ? '' : `snap ${duration(actor.snapshot_age_ms)}`);
  setText(parts.up, startedAt ? `up ${duration(Date.now() - startedAt)}` : '');
  parts.failure.hidden = !actor.last_failure;
  setText(parts.failure, actor.last_failure ? `last failure: ${actor.last_failure}` : '');
}

async function act(path, body, what) {
  try {
    await postJson(path, body);
    toast(what);
    setTimeout(() => refresh().catch(() => {}), 300);
  } catch (e) {
    toast(e.message, 'error');
  }
}

/** Makes an actor flash (restarted, failed, breaker moved). */
export function flash(path) {
  const node = nodes.get(path);
  if (!node) return;
  const { li } = node;
  li.classList.remove('flash');
  void li.offsetWidth; // restart the CSS animation
  li.classList.add('flash');
  clearTimeout(node.flashTimer);
  node.flashTimer = setTimeout(() => li.classList.remove('flash'), FLASH_MS);
}

/** A lifecycle event from /api/events (an EventRecord, or a bare Event). */
export function onEvent(record) {
  const event = record && record.event ? record.event : record;
  if (!event || !event.type || !fresh(record)) return;
  const at = record.at_ms || Date.now();
  const recent = Date.now() - at < FRESH_EVENT_MS;
  // A `started` of an actor already shown is a new incarnation: a restart.
  const restart = event.type === 'started' && nodes.has(event.path);
  if (recent && (restart || ['restarted', 'failed', 'stopped', 'breaker', 'escalated'].includes(event.type))) flash(event.path);
  const detail = event.error || event.reason || event.state || event.kind
    || (event.restarts !== undefined ? `#${event.restarts}` : '');
  const item = h('li', { class: `event event-${event.type}`, 'data-seq': record.seq },
    h('time', {}, clock(at)), ' ',
    h('span', { class: 'etype' }, event.type), ' ',
    h('a', { href: '#/tree', class: 'epath', onclick: () => reveal(event.path) }, event.path),
    detail ? h('span', { class: 'muted' }, ` ${detail}`) : null);
  eventsEl.prepend(item);
  while (eventsEl.childElementCount > EVENTS_KEPT) eventsEl.lastElementChild.remove();
}

function reveal(path) {
  const node = nodes.get(path);
  if (!node) return;
  node.li.scrollIntoView({ block: 'center', behavior: 'smooth' });
  flash(path);
}

function applyFilter() {
  const q = filterEl.value.trim().toLowerCase();
  if (!q) {
    for (const node of nodes.values()) node.li.hidden = false;
    return;
  }
  const visible = new Set();
  for (const path of nodes.keys()) {
    if (!path.toLowerCase().includes(q)) continue;
    for (let cut = path.length; cut > 0; cut = path.lastIndexOf('/', cut - 1)) visible.add(path.slice(0, cut));
  }
  for (const [path, node] of nodes) node.li.hidden = !visible.has(path);
}
