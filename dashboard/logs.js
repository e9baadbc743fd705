// Live logs from /api/logs, with a lowest-level filter, a text filter and a pause. The
// stream is followed from the page's start, so the page has the recent lines when opened.

import { h, clock, replace, freshFilter } from './util.js';
import { openStream } from './net.js';

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error'];
/** Lines kept on the page. */
const KEPT = 2000;

let logsEl;
let levelEl;
let filterEl;
let pauseEl;
let source = null;
/** Lines that arrived while paused, shown on resume. */
let held = [];
/** Lines a reconnection replays again are skipped. */
const fresh = freshFilter();

export function init() {
  logsEl = document.getElementById('logs');
  levelEl = document.getElementById('log-level');
  filterEl = document.getElementById('log-filter');
  pauseEl = document.getElementById('log-pause');
  levelEl.addEventListener('change', applyFilter);
  filterEl.addEventListener('input', applyFilter);
  pauseEl.addEventListener('change', () => {
    if (!pauseEl.checked) {
      for (const line of held) add(line);
      held = [];
    }
  });
  document.getElementById('log-clear').addEventListener('click', () => replace(logsEl));
  connect();
  // The browser retries a dropped stream by itself, but not one the server refused.
  setInterval(() => {
    if (source.readyState === EventSource.CLOSED) connect();
  }, 10000);
}

function connect() {
  source = openStream('/api/logs', {
    message: receive,
    log: receive,
    lagged: () => receive({ level: 'warn', target: 'dashboard', message: 'some log lines were dropped (this page fell behind)' }),
  });
}

/** Normalises a log record: JSON with level/target/message (or fields), or a bare line. */
function normalise(data) {
  if (typeof data === 'string') {
    const m = data.match(/\b(TRACE|DEBUG|INFO|WARN|ERROR)\b/);
    return { level: m ? m[1].toLowerCase() : 'info', message: data };
  }
  const fields = data.fields || {};
  const level = String(data.level || 'info').toLowerCase();
  const message = data.message ?? data.msg ?? data.line ?? fields.message ?? '';
  const extra = Object.entries(fields).filter(([k]) => k !== 'message').map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`);
  const at = data.at_ms ?? data.time_ms ?? (data.timestamp ? Date.parse(data.timestamp) : null);
  return { level, target: data.target, message: [message, ...extra].join(' '), at };
}

function receive(data) {
  if (!fresh(data)) return;
  const line = normalise(data);
  if (pauseEl.checked) {
    held.push(line);
    if (held.length > KEPT) held.shift();
    return;
  }
  add(line);
}

function add(line) {
  const stick = logsEl.scrollTop + logsEl.clientHeight >= logsEl.scrollHeight - 8;
  const el = h('div', { class: `log-line level-${line.level}`, 'data-level': line.level },
    h('time', {}, clock(line.at)), ' ',
    h('span', { class: 'level' }, line.level.toUpperCase().padEnd(5)), ' ',
    line.target ? h('span', { class: 'target' }, line.target) : null, line.target ? ' ' : null,
    h('span', { class: 'msg' }, line.message));
  el.hidden = !visible(el);
  logsEl.append(el);
  while (logsEl.childElementCount > KEPT) logsEl.firstElementChild.remove();
  if (stick) logsEl.scrollTop = logsEl.scrollHeight;
}

function visible(el) {
  const min = LEVELS.indexOf(levelEl.value);
  const level = LEVELS.indexOf(el.dataset.level);
  if (level !== -1 && level < min) return false;
  const q = filterEl.value.trim().toLowerCase();
  return !q || el.textContent.toLowerCase().includes(q);
}

function applyFilter() {
  for (const el of logsEl.children) el.hidden = !visible(el);
}

/** Whether the stream is connected, for the header. */
export function connected() {
  return source !== null && source.readyState === EventSource.OPEN;
}
