// Small DOM and formatting helpers shared by every page. No framework: pages keep their
// elements and update them in place, so animations (and test handles on elements) survive
// a refresh.

/** Creates an element: `h('a', {href: '#', class: 'x', 'data-id': 3, onclick}, 'text', child)`. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'class') {
      el.className = value;
    } else if (key === 'text') {
      el.textContent = value;
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Sets `el`'s text only when it changed (no needless layout or mutation events). */
export function setText(el, text) {
  const value = text === undefined || text === null ? '' : String(text);
  if (el.textContent !== value) el.textContent = value;
}

/** Replaces all children of `el`. */
export function replace(el, ...children) {
  el.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
}

/** "850 ms", "12 s", "3 min", "2 h", "4 d". */
export function duration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return '–';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s < 10 ? s.toFixed(1) : Math.round(s)} s`;
  if (s < 3600) return `${Math.round(s / 60)} min`;
  if (s < 86400) return `${(s / 3600).toFixed(s < 36000 ? 1 : 0)} h`;
  return `${(s / 86400).toFixed(1)} d`;
}

/** "12 s ago" for a wall-clock time in milliseconds. */
export function ago(atMs) {
  if (!atMs) return '–';
  return `${duration(Math.max(0, Date.now() - atMs))} ago`;
}

/** A local date and time, for tooltips and history. */
export function when(atMs) {
  if (!atMs) return '';
  return new Date(atMs).toLocaleString();
}

/** Clock time with seconds, for logs and events. */
export function clock(atMs) {
  const d = atMs ? new Date(atMs) : new Date();
  return d.toLocaleTimeString([], { hour12: false });
}

/** The first 10 characters of a commit id. */
export function short(commit) {
  return commit ? String(commit).slice(0, 10) : '–';
}

/** A stable hue for a name, so a repository keeps its badge colour everywhere. */
export function hue(name) {
  let hash = 2166136261;
  for (const ch of String(name)) hash = Math.imul(hash ^ ch.codePointAt(0), 16777619);
  return Math.abs(hash) % 360;
}

/** A repository badge. */
export function repoBadge(repo) {
  return h('span', { class: 'repo', style: `--hue:${hue(repo)}`, 'data-repo': repo }, repo);
}

/** A chip for a task status (phase). */
export function statusChip(status) {
  return h('span', { class: `chip phase-${status}`, 'data-status': status }, status);
}

/** A short message in the corner; `kind` is `ok` or `error`. */
export function toast(message, kind = 'ok') {
  const box = document.getElementById('toasts');
  const el = h('div', { class: `toast ${kind}`, role: kind === 'error' ? 'alert' : 'status' }, message);
  box.append(el);
  setTimeout(() => el.classList.add('gone'), 4000);
  setTimeout(() => el.remove(), 4600);
}

/** The task statuses in pipeline order (actors/src/pipeline/phase.rs). */
export const STATUSES = [
  'backlog', 'spec', 'qa', 'impl', 'test', 'retry', 'rebase', 'done', 'merged', 'failed', 'blocked',
];

/** Statuses a task no longer leaves by itself. */
export const FINISHED = new Set(['merged', 'failed', 'blocked']);

/** A list out of an answer that is either a bare array or an object holding one. */
export function listOf(data, ...keys) {
  if (Array.isArray(data)) return data;
  for (const key of keys) if (data && Array.isArray(data[key])) return data[key];
  return [];
}

/**
 * A filter for records of a stream that replays its recent records on every (re)connection:
 * true for a record not shown yet. Records carry `seq` and `at_ms`; a record is old when both
 * are at most the last shown ones (after a daemon restart sequence numbers start over, but
 * time goes on).
 */
export function freshFilter() {
  let lastSeq = -1;
  let lastAt = -1;
  return (record) => {
    if (!record || typeof record !== 'object' || typeof record.seq !== 'number') return true;
    const at = record.at_ms || 0;
    if (record.seq <= lastSeq && at <= lastAt) return false;
    lastSeq = record.seq;
    lastAt = Math.max(lastAt, at);
    return true;
  };
}
