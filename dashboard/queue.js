// The release queue of every repository: its done tasks in the order a train takes them,
// the train under way (stage and what it decided per branch) and the last train's digest.

import { h, replace, ago, when, short, duration, repoBadge, statusChip, listOf } from './util.js';
import { getJson } from './net.js';

let queueEl;

export function init() {
  queueEl = document.getElementById('queue');
}

/** One entry per repository, whether the answer is a list or a map by repository. */
function repositories(data) {
  const list = listOf(data, 'repos', 'queues', 'queue');
  if (list.length || Array.isArray(data)) return list;
  if (data && typeof data === 'object') {
    return Object.entries(data).map(([repo, value]) => ({ repo, ...value }));
  }
  return [];
}

export async function refresh() {
  const repos = repositories(await getJson('/api/queue'));
  if (!repos.length) {
    replace(queueEl, h('p', { class: 'empty' }, 'No repositories in the pipeline.'));
    return;
  }
  replace(queueEl, repos.map(card));
}

function card(entry) {
  const repo = entry.repo || entry.name || '?';
  const queued = listOf(entry.queued ?? entry.done ?? entry.tasks ?? entry.queue, 'tasks');
  // The train's state: a TrainSnapshot ({run, last, trains}) under `train`, or its parts.
  const train = entry.train || {};
  const run = train.run !== undefined ? train.run : entry.run;
  const last = train.last !== undefined ? train.last : entry.last ?? entry.digest ?? entry.last_digest;
  const trains = train.trains ?? entry.trains;
  return h('article', { class: 'card queue-repo', 'data-repo': repo },
    h('h2', {}, repoBadge(repo), trains !== undefined ? h('span', { class: 'muted' }, ` ${trains} train${trains === 1 ? '' : 's'} so far`) : null),
    h('h3', {}, `Queued (${queued.length})`),
    queued.length
      ? h('ol', { class: 'queued' }, queued.map((t) => h('li', { 'data-task-id': t.id },
        h('a', { href: `#/tasks/${t.id}` }, `#${t.id}`), ' ', statusChip(t.status || 'done'), ' ', t.title || '')))
      : h('p', { class: 'empty' }, 'Nothing waiting for a train.'),
    h('h3', {}, 'Train under way'),
    run ? runView(run) : h('p', { class: 'empty' }, 'None.'),
    h('h3', {}, 'Last release'),
    last ? digestView(last) : h('p', { class: 'empty' }, 'No train has finished yet.'));
}

function stageName(stage) {
  return typeof stage === 'string' ? stage.toLowerCase() : JSON.stringify(stage);
}

function outcomeView(outcome) {
  if (!outcome) return h('span', { class: 'chip pending' }, 'pending');
  if (outcome.Merged || outcome.merged) {
    const m = outcome.Merged || outcome.merged;
    return h('span', { class: 'chip phase-merged', title: m.commit }, `merged ${short(m.commit)}`);
  }
  const x = outcome.Excluded || outcome.excluded || {};
  return h('span', { class: 'chip phase-failed', title: x.reason }, `excluded: ${x.reason || ''}`);
}

function runView(run) {
  return h('div', { class: 'train', 'data-stage': stageName(run.stage) },
    h('p', {}, `Train #${run.number} · `, h('span', { class: 'chip stage' }, stageName(run.stage)),
      ` · started ${ago(run.started_ms)} · main was ${short(run.main_before)}`),
    h('ol', { class: 'entries' }, (run.entries || []).map((e) => h('li', {},
      h('a', { href: `#/tasks/${e.task}` }, `#${e.task}`), ' ', e.title, ' ', h('code', {}, e.branch), ' ',
      outcomeView(e.outcome)))));
}

function pushedText(pushed) {
  if (pushed === null || pushed === undefined) return 'not pushed (no remote)';
  if (pushed.Ok !== undefined) return pushed.Ok ? `pushed to ${pushed.Ok}` : 'not pushed (no remote)';
  if (pushed.Err !== undefined) return `push failed: ${pushed.Err}`;
  return JSON.stringify(pushed);
}

function digestView(d) {
  const merged = d.merged || [];
  const excluded = d.excluded || [];
  return h('div', { class: 'digest' },
    h('p', {}, `Release #${d.number}, finished ${ago(d.finished_ms)}`,
      d.started_ms && d.finished_ms ? ` (took ${duration(d.finished_ms - d.started_ms)})` : '',
      ` · main ${short(d.main)} · ${pushedText(d.pushed)}`),
    h('ul', { class: 'digest-lines', title: when(d.finished_ms) },
      merged.map(([id, title]) => h('li', { class: 'ok' }, '✓ merged ', h('a', { href: `#/tasks/${id}` }, `#${id}`), ` ${title}`)),
      excluded.map(([id, title, reason]) => h('li', { class: 'bad' }, '✗ excluded ',
        h('a', { href: `#/tasks/${id}` }, `#${id}`), ` ${title}: ${reason}`)),
      !merged.length && !excluded.length ? h('li', { class: 'muted' }, 'nothing merged, main unchanged') : null));
}
