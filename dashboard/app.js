// The dashboard's entry point: hash routes to pages, the polling of the page on screen, and
// the lifecycle event stream (/api/events) that drives the tree's flashes and the header's
// live indicator. Pages are modules with init() and refresh() (and show()/hide() for the
// task page); none of them knows about routing.

import * as tree from './tree.js';
import * as tasks from './tasks.js';
import * as task from './task.js';
import * as queue from './queue.js';
import * as logs from './logs.js';
import * as status from './status.js';
import { openStream, ApiError } from './net.js';
import { setText } from './util.js';

/** How often the page on screen re-reads its data (events make the tree refresh sooner). */
const POLL_MS = { tree: 1000, tasks: 2000, task: 2000, queue: 3000, logs: 0, status: 3000 };
const PAGES = { tree, tasks, task, queue, logs, status };

let page = null;
let pollTimer = null;
let treeRefreshTimer = null;
const liveEl = document.getElementById('live');
const bannerEl = document.getElementById('banner');

/** `#/tasks/12` → { name: 'task', id: 12 }. */
function route() {
  const [path] = window.location.hash.replace(/^#\/?/, '').split('?');
  const parts = path.split('/').filter(Boolean);
  if (parts[0] === 'tasks' && parts[1]) return { name: 'task', id: Number(parts[1]) };
  if (parts[0] && PAGES[parts[0]]) return { name: parts[0] };
  return { name: 'tree' };
}

function navigate() {
  const next = route();
  if (page && page.name === 'task' && next.name !== 'task') task.hide();
  page = next;
  for (const name of Object.keys(PAGES)) {
    document.getElementById(`view-${name}`).hidden = name !== next.name;
  }
  const navName = next.name === 'task' ? 'tasks' : next.name;
  for (const a of document.querySelectorAll('#nav a')) {
    a.classList.toggle('active', a.dataset.view === navName);
    if (a.dataset.view === navName) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  document.title = next.name === 'task' ? `borg · task #${next.id}` : `borg · ${navName}`;
  poll();
}

/** Refreshes the page on screen now, then again after its interval. */
async function poll() {
  clearTimeout(pollTimer);
  const current = page;
  try {
    if (current.name === 'task') await task.show(current.id);
    else if (current.name !== 'logs') await PAGES[current.name].refresh();
    reachable(true);
  } catch (e) {
    reachable(false, e);
  }
  if (current !== page) return;
  const every = POLL_MS[current.name];
  if (every) pollTimer = setTimeout(poll, document.hidden ? every * 5 : every);
}

/** Shows (or clears) the banner saying the API cannot be read. */
function reachable(ok, error) {
  if (ok) {
    if (bannerEl.dataset.kind === 'unreachable') bannerEl.hidden = true;
    return;
  }
  if (error instanceof ApiError && (error.status === 401 || error.status === 403)) return; // net.js says why
  bannerEl.dataset.kind = 'unreachable';
  bannerEl.textContent = error instanceof ApiError && error.status === 0
    ? 'borg does not answer; retrying…'
    : `Could not read this page's data: ${error.message}`;
  bannerEl.hidden = false;
}

function setLive(state, title) {
  liveEl.dataset.state = state;
  liveEl.title = title;
  setText(liveEl, state);
}

/** Refreshes the tree soon after an event (several events in a burst cause one read). */
function refreshTreeSoon() {
  if (!page || page.name !== 'tree' || treeRefreshTimer) return;
  treeRefreshTimer = setTimeout(() => {
    treeRefreshTimer = null;
    tree.refresh().catch(() => {});
  }, 150);
}

function followEvents() {
  const onEvent = (data) => {
    tree.onEvent(data);
    refreshTreeSoon();
  };
  const handlers = {
    open: () => setLive('live', 'Live updates: connected'),
    error: (_e, source) => setLive(source.readyState === EventSource.CLOSED ? 'offline' : 'reconnecting',
      'Live updates: the event stream is down'),
    message: onEvent,
    lagged: refreshTreeSoon,
  };
  // The server names each event by its type (src/web/streams.rs); the handler is the same.
  for (const type of ['started', 'failed', 'restarted', 'stopped', 'escalated', 'breaker']) handlers[type] = onEvent;
  return openStream('/api/events', handlers);
}

/** Follows the events, reopening the stream when the browser gave up on it (it retries a
 * dropped connection by itself, but not one the server refused). */
function keepFollowingEvents() {
  let source = followEvents();
  setInterval(() => {
    if (source.readyState === EventSource.CLOSED) source = followEvents();
  }, 10000);
}

function start() {
  tree.init();
  tasks.init();
  task.init();
  queue.init();
  logs.init();
  status.init({
    onRepos: tasks.learnRepos,
    onVersion: (v) => { document.querySelector('.brand').title = `borg ${v}`; },
  });
  status.load().catch(() => {});
  keepFollowingEvents();
  window.addEventListener('hashchange', navigate);
  document.addEventListener('visibilitychange', () => { if (!document.hidden) poll(); });
  navigate();
}

start();
