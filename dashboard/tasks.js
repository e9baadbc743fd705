// Pipeline tasks: the list (`#tasks`, one `[data-task-id]` per task) with repository and
// status filters, the create-task form, and cancel/retry buttons.

import { h, replace, ago, repoBadge, statusChip, toast, STATUSES, FINISHED, listOf } from './util.js';
import { getJson, postJson } from './net.js';

let listEl;
let repoFilter;
let statusFilter;
let form;
/** Repositories seen in answers, for the filter and the form. */
const repos = new Set();

export function init() {
  listEl = document.getElementById('tasks');
  repoFilter = document.getElementById('task-filter-repo');
  statusFilter = document.getElementById('task-filter-status');
  form = document.getElementById('task-form');
  for (const status of STATUSES) statusFilter.append(h('option', { value: status }, status));
  const params = new URLSearchParams(window.location.hash.split('?')[1] || '');
  repoFilter.addEventListener('change', () => refresh().catch(report));
  statusFilter.addEventListener('change', () => refresh().catch(report));
  if (params.get('status')) statusFilter.value = params.get('status');
  document.getElementById('task-new').addEventListener('click', () => {
    form.hidden = !form.hidden;
    if (!form.hidden) document.getElementById('task-form-title').focus();
  });
  document.getElementById('task-form-cancel').addEventListener('click', () => { form.hidden = true; });
  form.addEventListener('submit', create);
}

function report(e) {
  toast(e.message, 'error');
}

/** Adds repository names to the filter and the form's choices. */
export function learnRepos(names) {
  for (const name of names) {
    if (!name || repos.has(name)) continue;
    repos.add(name);
    repoFilter.append(h('option', { value: name }, name));
    document.getElementById('task-form-repo').append(h('option', { value: name }, name));
  }
}

/** Re-reads the task list with the current filters. */
export async function refresh() {
  const query = new URLSearchParams();
  if (repoFilter.value) query.set('repo', repoFilter.value);
  if (statusFilter.value) query.set('status', statusFilter.value);
  const qs = query.toString();
  const data = await getJson(`/api/tasks${qs ? `?${qs}` : ''}`);
  const tasks = listOf(data, 'tasks');
  learnRepos(tasks.map((t) => t.repo));
  render(tasks);
}

function render(tasks) {
  if (!tasks.length) {
    const filtered = repoFilter.value || statusFilter.value;
    replace(listEl, h('p', { class: 'empty' }, filtered ? 'No task matches these filters.' : 'No tasks yet.'));
    return;
  }
  const sorted = [...tasks].sort((a, b) => b.id - a.id);
  const keep = new Map();
  for (const el of listEl.querySelectorAll('[data-task-id]')) keep.set(el.dataset.taskId, el);
  const rows = sorted.map((task) => {
    const old = keep.get(String(task.id));
    const fresh = row(task);
    // Unchanged rows stay as they are (no flicker, no lost focus).
    if (old && old.dataset.sig === fresh.dataset.sig) return old;
    return fresh;
  });
  replace(listEl, rows);
}

/** The buttons that make sense for a task in `status`. */
export function actions(task, after) {
  const out = [];
  if (!FINISHED.has(task.status) && task.status !== 'done') {
    out.push(h('button', {
      type: 'button', class: 'small danger', 'data-action': 'cancel',
      onclick: (e) => { e.preventDefault(); act(task.id, 'cancel', after); },
    }, 'cancel'));
  }
  if (task.status === 'failed' || task.status === 'blocked') {
    out.push(h('button', {
      type: 'button', class: 'small', 'data-action': 'retry',
      onclick: (e) => { e.preventDefault(); act(task.id, 'retry', after); },
    }, 'retry'));
  }
  return out;
}

function row(task) {
  const note = task.waiting ? `waiting: ${task.waiting}` : task.reason || '';
  const el = h('a', {
    class: `task status-${task.status}`, href: `#/tasks/${task.id}`,
    'data-task-id': task.id, 'data-status': task.status,
  },
  h('span', { class: 'id' }, `#${task.id}`),
  repoBadge(task.repo),
  statusChip(task.status),
  h('span', { class: 'title' }, task.title),
  h('span', { class: 'meta' },
    task.impl_attempts ? h('span', { title: 'Implementation attempts' }, `attempt ${task.impl_attempts}`) : null,
    h('span', { class: 'updated', title: new Date(task.updated_ms).toLocaleString() }, ago(task.updated_ms))),
  h('span', { class: 'actions' }, actions(task, () => refresh().catch(report))),
  note ? h('span', { class: task.waiting ? 'note waiting' : 'note' }, note) : null);
  el.dataset.sig = JSON.stringify([task.status, task.title, task.updated_ms, task.reason, task.waiting, task.impl_attempts]);
  return el;
}

async function act(id, what, after) {
  if (what === 'cancel' && !window.confirm(`Cancel task #${id}?`)) return;
  try {
    const answer = await postJson(`/api/tasks/${id}/${what}`);
    const created = answer && answer.task && answer.task.id;
    toast(what === 'retry' && created ? `Task #${id} retried as task #${created}` : `Task #${id}: ${what} done`);
    if (after) after();
  } catch (e) {
    report(e);
  }
}

async function create(e) {
  e.preventDefault();
  const body = {
    // No repository: the primary one (PIPELINE_REPO).
    repo: document.getElementById('task-form-repo').value || undefined,
    title: document.getElementById('task-form-title').value.trim(),
    description: document.getElementById('task-form-description').value.trim(),
  };
  if (!body.title) return;
  try {
    const answer = await postJson('/api/tasks', body);
    const id = answer && (answer.id ?? (answer.task && answer.task.id));
    toast(id !== undefined ? `Task #${id} created` : 'Task created');
    form.reset();
    form.hidden = true;
    await refresh();
  } catch (err) {
    report(err);
  }
}
