// One task: its state (`#task-detail`: history of phase transitions with notes, attempts,
// reason) and its agent's output streaming into `#task-output` from
// /api/tasks/{id}/stream (a replay of recent lines, then live ones).

import { h, replace, setText, ago, when, short, repoBadge, statusChip, toast, freshFilter, FINISHED } from './util.js';
import { getJson, openStream, ApiError } from './net.js';
import { actions } from './tasks.js';

/** Output lines kept on the page. */
const OUTPUT_KEPT = 5000;

let detailEl;
let outputEl;
let outputState;
let current = null;
let source = null;
let reconnectTimer = null;
/** Whether the output stream is open, and the status of the task shown. */
let streaming = false;
let status = null;
/** Lines of the current task already shown (the stream replays on every connection). */
let fresh = freshFilter();

export function init() {
  detailEl = document.getElementById('task-detail');
  outputEl = document.getElementById('task-output');
  outputState = document.getElementById('task-output-state');
}

/** Shows task `id` (a number) and starts following its output. */
export function show(id) {
  if (current !== id) {
    stop();
    current = id;
    replace(detailEl, h('p', { class: 'muted' }, `Loading task #${id}…`));
    replace(outputEl);
    fresh = freshFilter();
    follow(id);
  }
  return refresh();
}

/** Leaves the page: closes the output stream. */
export function hide() {
  stop();
  current = null;
}

function stop() {
  streaming = false;
  clearTimeout(reconnectTimer);
  if (source) source.close();
  source = null;
}

/** Re-reads the task (history and status change while it runs). */
export async function refresh() {
  if (current === null) return;
  const id = current;
  let data;
  try {
    data = await getJson(`/api/tasks/${id}`);
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) {
      replace(detailEl, h('p', { class: 'empty' }, `There is no task #${id}.`), h('a', { href: '#/tasks' }, '← all tasks'));
      return;
    }
    throw e;
  }
  if (id !== current) return;
  const { snap, output, dropped } = unpack(data);
  render(snap);
  // The lines the API keeps; those the stream already brought are skipped.
  if (dropped && !outputEl.childElementCount) append({ text: `(${dropped} earlier lines are no longer kept)` }, 'notice');
  for (const line of output) append(line);
}

/** The answer: `{task: TaskSnapshot, output: {lines, dropped}}` (a bare snapshot works too). */
function unpack(data) {
  const raw = (data && data.output) || [];
  const output = Array.isArray(raw) ? raw : raw.lines || [];
  const dropped = Array.isArray(raw) ? 0 : raw.dropped || 0;
  if (data && Array.isArray(data.history)) return { snap: data, output, dropped };
  return { snap: (data && (data.task || data.snapshot)) || {}, output, dropped };
}

function field(label, value, extra = {}) {
  if (value === undefined || value === null || value === '') return null;
  return [h('dt', {}, label), h('dd', extra, value)];
}

function render(snap) {
  const task = snap.task || {};
  const title = task.title || snap.title || '';
  const repo = task.repo || snap.repo || '';
  const header = h('div', { class: 'detail-head' },
    h('a', { href: '#/tasks', class: 'back' }, '← tasks'),
    h('h1', {}, h('span', { class: 'id' }, `#${snap.id}`), ' ', title),
    h('div', { class: 'badges' }, repo ? repoBadge(repo) : null, statusChip(snap.status),
      h('span', { class: 'actions' }, actions(snap, () => refresh().catch((e) => toast(e.message, 'error'))))));
  const facts = h('dl', { class: 'kv', id: 'task-facts' },
    field('reason', snap.reason, { class: 'reason' }),
    field('waiting', snap.waiting, { class: 'waiting' }),
    field('branch', snap.branch),
    field('base', snap.base ? short(snap.base) : null),
    field('merged as', snap.merged ? short(snap.merged) : null),
    field('attempts', `implementation ${snap.impl_attempts ?? 0} · this phase ${snap.phase_attempts ?? 0}` +
      (snap.rebases ? ` · rebases ${snap.rebases}` : '')),
    field('cost', snap.cost_usd ? `$${Number(snap.cost_usd).toFixed(4)}` : null),
    field('created', snap.created_ms ? `${when(snap.created_ms)} (${ago(snap.created_ms)})` : null),
    field('updated', snap.updated_ms ? ago(snap.updated_ms) : null),
    field('requested by', task.requested_by),
    field('from chat', task.origin),
    field('QA tests', snap.qa_files && snap.qa_files.length ? snap.qa_files.join(', ') : null),
    field('conflicts', snap.conflicts && snap.conflicts.length ? snap.conflicts.join(', ') : null));
  const description = task.description
    ? h('div', { class: 'card' }, h('h2', {}, 'Description'), h('p', { class: 'description' }, task.description))
    : null;
  const history = snap.history || [];
  const rows = history.map((t, i) => h('li', { class: 'transition', 'data-to': t.to, 'data-index': i },
    h('time', { title: when(t.at_ms) }, ago(t.at_ms)),
    h('span', { class: 'move' }, statusChip(t.from), ' → ', statusChip(t.to)),
    h('span', { class: 'note' }, t.note || '')));
  const historyCard = h('div', { class: 'card' },
    h('h2', {}, `History (${history.length})`),
    rows.length ? h('ol', { id: 'task-history', class: 'history' }, rows.reverse())
      : h('p', { id: 'task-history', class: 'empty' }, 'No transitions yet.'));
  const feedback = snap.feedback
    ? h('details', { class: 'card' }, h('summary', {}, 'Feedback for the next agent'), h('pre', { class: 'output small' }, snap.feedback))
    : null;
  replace(detailEl, header, h('div', { class: 'card' }, facts), description, historyCard, feedback);
  detailEl.dataset.taskId = snap.id;
  detailEl.dataset.status = snap.status;
  status = snap.status;
  showState();
}

/** "live" while the stream is open and the task still works; else what is shown is all. */
function showState() {
  if (!streaming) return;
  const finished = status === 'done' || FINISHED.has(status);
  setText(outputState, finished ? `(task ${status})` : 'live');
}

function follow(id) {
  setText(outputState, 'connecting…');
  source = openStream(`/api/tasks/${id}/stream`, {
    open: () => { streaming = true; showState(); },
    message: (data) => append(data),
    output: (data) => append(data),
    lagged: () => {
      // The server dropped this reader for being slow: read the replay again.
      append({ text: '… (fell behind; reconnecting)' }, 'notice');
      stop();
      reconnectTimer = setTimeout(() => { if (current === id) follow(id); }, 500);
    },
    error: (_e, src) => {
      streaming = false;
      setText(outputState, src.readyState === EventSource.CLOSED ? 'not available' : 'reconnecting…');
    },
  });
}

/** One output line as text: a string, or an object the API made of an agent's progress. */
function lineText(line) {
  if (typeof line === 'string') return line;
  if (line === null || typeof line !== 'object') return String(line);
  for (const key of ['line', 'text', 'message', 'summary']) {
    if (typeof line[key] === 'string') {
      const prefix = line.kind && line.kind !== 'text' ? `[${line.kind}] ` : '';
      return prefix + line[key];
    }
  }
  const keys = Object.keys(line);
  if (keys.length === 1) {
    const inner = line[keys[0]];
    const body = typeof inner === 'string' ? inner : Object.values(inner || {}).join(' ');
    return `[${keys[0]}] ${body}`;
  }
  return JSON.stringify(line);
}

function append(line, kind) {
  if (!fresh(line)) return;
  const stick = outputEl.scrollTop + outputEl.clientHeight >= outputEl.scrollHeight - 8;
  const at = line && typeof line === 'object' ? line.at_ms : null;
  const el = h('div', { class: `line${kind ? ` ${kind}` : ''}` },
    at ? h('time', {}, new Date(at).toLocaleTimeString([], { hour12: false }), ' ') : null,
    lineText(line));
  outputEl.append(el);
  while (outputEl.childElementCount > OUTPUT_KEPT) outputEl.firstElementChild.remove();
  if (stick) outputEl.scrollTop = outputEl.scrollHeight;
}
