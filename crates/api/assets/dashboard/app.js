// The Cutover dashboard: a hash-routed page over /dashboard/api, no framework, no build step.
'use strict';

const $ = (sel) => document.querySelector(sel);
const esc = (v) => String(v ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
const STATUSES = ['PENDING', 'IN_PROGRESS', 'COMPLETED', 'PARTIALLY_FAILED', 'FAILED', 'CANCELED'];
let me = null;
let timer = null;
let source = null;
let routeId = 0;
let seenEvents = new Set();
// a page whose data arrives after the user moved on must not draw over the new page
const current = (id) => id === routeId;

async function api(path, options = {}) {
  const headers = { 'X-Cutover-Dashboard': '1' };
  if (options.body) headers['Content-Type'] = 'application/json';
  const response = await fetch('/dashboard/api' + path, { credentials: 'same-origin', ...options, headers });
  const body = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) {
    const error = new Error((body && body.message) || response.statusText);
    error.status = response.status;
    throw error;
  }
  return options.whole ? body : body && body.data;
}

function stop() {
  if (timer) clearInterval(timer);
  timer = null;
  if (source) source.close();
  source = null;
}

// A task's progress bar, coloured by its state. The fill's width is set by drawBars through
// the CSSOM: the page's Content-Security-Policy refuses inline style attributes.
function barState(t) {
  if (t.status === 'PENDING' || t.status === 'IN_PROGRESS') return t.rollout && t.rollout.paused ? 'paused' : t.status === 'PENDING' ? 'pending' : 'running';
  return { COMPLETED: 'completed', PARTIALLY_FAILED: 'partially-failed', FAILED: 'failed', CANCELED: 'canceled' }[t.status] || 'pending';
}

function bar(t, big) {
  const p = Math.max(0, Math.min(100, Math.round(Number(t.progress) || 0)));
  return `<span class="bar${big ? ' big' : ''} bar-${barState(t)}" role="progressbar" aria-label="progress" aria-valuemin="0" aria-valuemax="100"
    aria-valuenow="${p}" aria-valuetext="${p}% · ${esc(t.status)}" data-progress="${p}"><span class="fill"></span></span>`;
}

function drawBars(root) {
  root.querySelectorAll('[role="progressbar"] > .fill').forEach((fill) => {
    fill.style.width = `${fill.parentElement.getAttribute('aria-valuenow')}%`;
  });
}

// every bar any page draws gets its width before the browser paints it
new MutationObserver(() => drawBars(document)).observe(document.body,
  { childList: true, subtree: true, attributes: true, attributeFilter: ['aria-valuenow'] });

function status(s) { return `<span class="status s-${esc(s)}">${esc(s)}</span>`; }

function seconds(s) {
  if (s == null) return '—';
  if (s < 90) return `${Math.round(s)} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

function runningTable(d) {
  const rows = d.running.map((t) => `<tr data-task="${esc(t.id)}"><td><a href="#/task/${esc(t.id)}"><code>${esc(t.id.slice(0, 8))}</code></a></td>
    <td>${esc(t.taskType)}</td><td>${esc(t.initiatedPackageId || '')}${t.targetVersion ? ' v' + t.targetVersion : ''}</td>
    <td>${status(t.status)}</td><td>${bar(t)} <span class="pct">${t.progress}%</span></td>
    <td>${t.counts.processed}/${t.counts.total}${t.counts.failed ? ` <span class="error">(${t.counts.failed} failed)</span>` : ''}</td></tr>`).join('');
  const more = d.moreRunning ? '<p><a href="#/tasks?status=IN_PROGRESS">all running tasks →</a></p>' : '';
  return `<table id="running"><thead><tr><th>id</th><th>type</th><th>plan</th><th>status</th><th>progress</th><th>items</th></tr></thead>
    <tbody>${rows || '<tr><td colspan="6" class="muted">nothing is running</td></tr>'}</tbody></table>${more}`;
}

async function overview(id) {
  const d = await api('/overview');
  if (!current(id)) return;
  const cards = STATUSES.map((s) => `<div class="card"><div class="n" id="count-${s}"><a href="#/tasks?status=${s}">${d.tasksByStatus[s] || 0}</a></div><div class="l">${s}</div></div>`).join('');
  const workers = d.workers.map((w) => `<tr><td><code>${esc(w.id)}</code></td><td>${esc(w.hostname)}:${w.pid}</td>
    <td>${w.stoppedAt ? 'stopped' : seconds(w.heartbeatAgeSecs) + ' ago'}</td><td>${w.inFlight}</td></tr>`).join('');
  const moved = d.perMinute.reduce((n, m) => n + m.moved, 0);
  $('#view').innerHTML = `<h1>Overview</h1><div class="cards">${cards}
      <div class="card"><div class="n" id="outbox-unsent">${d.outbox.unsent}</div><div class="l">outbox unsent · oldest ${seconds(d.outbox.oldestAgeSecs)}</div></div>
      <div class="card"><div class="n" id="dead-letters-count"><a href="#/dead-letters?status=DEAD">${d.deadLetters}</a></div><div class="l">dead letters to look at</div></div></div>
    <h2>Running</h2>${runningTable(d)}
    <h2>Last 60 minutes</h2><svg class="chart" id="per-minute"></svg>
    <div class="muted">${moved} subscription(s) moved · <span class="key-moved">■</span> moved · <span class="key-completed">■</span> completed · <span class="key-failed">■</span> failed or partly failed</div>
    <h2>Queues</h2>${queueTable(d.queues)}
    <h2>Workers</h2><table><thead><tr><th>id</th><th>host</th><th>heartbeat</th><th>in flight</th></tr></thead>
    <tbody>${workers || '<tr><td colspan="4" class="muted">no worker has reported</td></tr>'}</tbody></table>
    <h2>Sign-ins</h2><table id="sign-ins"><tbody>${d.signIns.map((a) => `<tr><td>${new Date(a.at).toLocaleString()}</td>
      <td>${a.action === 'sign_in' ? 'signed in' : 'signed out'}</td><td><code>${esc(a.keyPrefix)}</code></td></tr>`).join('')}</tbody></table>`;
  drawOverviewChart($('#per-minute'), d.perMinute);
}

function queueTable(queues) {
  const rows = queues.map((q) => `<tr data-queue="${esc(q.queue)}"><td><code>${esc(q.queue)}</code></td><td class="ready">${q.ready}</td>
    <td class="unacked">${q.unacked}</td><td class="consumers">${q.consumers}</td>
    <td class="${q.ageSecs > 30 ? 'error' : 'muted'}">${seconds(q.ageSecs)} ago by <code>${esc(q.observedBy)}</code></td></tr>`).join('');
  return `<table id="queues"><thead><tr><th>queue</th><th>ready</th><th>unacknowledged</th><th>consumers</th><th>read</th></tr></thead>
    <tbody>${rows || '<tr><td colspan="5" class="muted">no worker has read the queues yet</td></tr>'}</tbody></table>`;
}

function actions(t) {
  if (!me.canWrite) return '';
  let out = '';
  if (t.status === 'FAILED' || t.status === 'PARTIALLY_FAILED') out += `<button data-act="retry" data-id="${esc(t.id)}">Retry</button> `;
  const running = t.status === 'PENDING' || t.status === 'IN_PROGRESS';
  if (running && t.rollout) out += t.rollout.paused
    ? `<button data-act="resume" data-id="${esc(t.id)}">Resume</button> `
    : `<button data-act="pause" data-id="${esc(t.id)}">Pause rollout</button> `;
  // maker-checker: another admin approves or rejects; the requester sees who it waits for
  if (t.status === 'PENDING' && t.approval && t.approval.state === 'PENDING') {
    out += t.approval.requestedBy === me.keyPrefix
      ? '<span id="approval-wait" class="muted">waits for another admin to approve it</span> '
      : `<button data-act="approve" data-id="${esc(t.id)}">Approve</button> <button class="danger" data-act="reject" data-id="${esc(t.id)}">Reject</button> `;
  }
  if (running) out += `<button class="danger" data-act="cancel" data-id="${esc(t.id)}">Cancel</button>`;
  return out;
}

// What a task's migration policy did: who it left alone, by reason, and the approval.
function policyFacts(t) {
  if (!t.policy && !t.approval) return '';
  let out = '';
  if (t.policy) {
    const p = t.policy, parts = [];
    if (p.noticePeriod) parts.push(`notice ${esc(p.noticePeriod)}`);
    if (p.requireApproval) parts.push('approval required');
    if (p.exclude) parts.push('excludes ' + Object.keys(p.exclude).map(esc).join(', '));
    const by = t.excludedByReason || {};
    out += `<tr><th>policy</th><td id="task-policy">${parts.join(' · ') || 'none'}</td></tr>
      <tr><th>excluded</th><td id="task-excluded">${t.counts.excluded ?? 0} (${Object.entries(by).map(([k, n]) => `${esc(k)} ${n}`).join(', ')})</td></tr>`;
  }
  if (t.approval) {
    const a = t.approval;
    out += `<tr><th>approval</th><td id="task-approval">${esc(a.state)} · requested by <code>${esc(a.requestedBy || '')}</code>${a.decidedBy ? ` · decided by <code>${esc(a.decidedBy)}</code>` : ''}</td></tr>`;
  }
  return out;
}

// A finished task that moved subscriptions and was not rolled back yet can be, from its page.
function rollbackAction(t, movedFrom) {
  const finished = ['COMPLETED', 'PARTIALLY_FAILED', 'FAILED', 'CANCELED'].includes(t.status);
  if (!me.canWrite || !finished || t.rolledBackBy || t.taskType === 'ROLLBACK_MIGRATION' || !movedFrom || !movedFrom.length) return '';
  return ` <button class="danger" id="rollback" data-id="${esc(t.id)}">Rollback</button>`;
}

async function rollback(button, t, movedFrom) {
  const back = movedFrom.map((m) => `${m.count} subscription(s) back to v${m.version}`).join(', ');
  if (!confirm(`Roll back task ${t.id}? This moves ${back} of plan ${t.initiatedPackageId || ''}, `
    + 'those still on the version the task moved them to; the others are skipped.')) return;
  button.disabled = true;
  try {
    const r = await api(`/tasks/${encodeURIComponent(t.id)}/rollback`, { method: 'POST' });
    location.hash = '#/task/' + r.taskId;
  } catch (e) {
    button.disabled = false;
    alert(e.message);
  }
}

async function act(button) {
  const verb = button.dataset.act, id = button.dataset.id;
  if (!confirm(`${verb[0].toUpperCase() + verb.slice(1)} task ${id}?`)) return;
  try {
    await api(`/tasks/${encodeURIComponent(id)}/${verb}`, { method: 'POST' });
    route();
  } catch (e) {
    alert(e.message);
  }
}

async function tasks(params, id) {
  const query = new URLSearchParams(params);
  query.delete('trail');
  const page = await api('/tasks?' + query.toString(), { whole: true });
  if (!current(id)) return;
  const rows = page.data, types = page.taskTypes;
  // the cursors of the pages before this one ride in the hash, so Back and Newer both work
  const trail = (params.trail || '').split(',').filter(Boolean);
  const at = (cursor, nextTrail) => {
    const p = { ...params };
    delete p.after; delete p.trail;
    if (cursor) p.after = cursor;
    if (nextTrail.length) p.trail = nextTrail.join(',');
    return '#/tasks?' + new URLSearchParams(p).toString();
  };
  const newer = params.after ? `<a id="page-newer" href="${esc(at(trail[trail.length - 1] === '-' ? '' : trail[trail.length - 1], trail.slice(0, -1)))}">← newer</a>` : '';
  const older = page.next ? `<a id="page-older" href="${esc(at(page.next, [...trail, params.after || '-']))}">older →</a>` : '';
  const opts = (list, current) => '<option value="">any</option>' + list.map((v) => `<option${v === current ? ' selected' : ''}>${v}</option>`).join('');
  const pick = (t) => me.canWrite ? `<td><input type="checkbox" class="pick" value="${esc(t.id)}" aria-label="select task"></td>` : '';
  const body = rows.map((t) => `<tr data-task="${esc(t.id)}">${pick(t)}<td><a href="#/task/${esc(t.id)}"><code>${esc(t.id.slice(0, 8))}</code></a></td>
      <td>${esc(t.taskType)}</td><td>${esc(t.initiatedPackageId || '')}${t.targetVersion ? ' v' + t.targetVersion : ''}</td>
      <td>${status(t.status)}</td><td>${bar(t)} ${t.progress}%</td>
      <td>${t.counts.processed}/${t.counts.total}${t.counts.failed ? ` <span class="error">(${t.counts.failed} failed)</span>` : ''}</td>
      <td>${new Date(t.createdAt).toLocaleString()}</td><td>${actions(t)}</td></tr>`).join('');
  $('#view').innerHTML = `<h1>Tasks</h1>
    <form class="filters" id="filters">
      <label>status <select name="status">${opts(STATUSES, params.status)}</select></label>
      <label>type <select name="type">${opts(types, params.type)}</select></label>
      <label>plan <input name="plan" value="${esc(params.plan || '')}" size="12"></label>
      <label>id <input name="q" value="${esc(params.q || '')}" size="36" placeholder="task id"></label>
      <button type="submit">Filter</button></form>
    ${me.canWrite ? `<p id="bulk"><label><input type="checkbox" id="pick-all"> all</label>
      <button id="bulk-retry" disabled>Retry selected</button> <button id="bulk-cancel" class="danger" disabled>Cancel selected</button>
      <span id="bulk-result" class="muted"></span></p>` : ''}
    <table id="task-table"><thead><tr>${me.canWrite ? '<th></th>' : ''}<th>id</th><th>type</th><th>plan</th><th>status</th><th>progress</th><th>items</th><th>created</th><th></th></tr></thead>
    <tbody>${body || '<tr><td colspan="9" class="muted">no tasks</td></tr>'}</tbody></table>
    <p class="pager">${newer} ${older}</p>`;
  if (me.canWrite) bulkControls();
  $('#filters').onsubmit = (e) => {
    e.preventDefault();
    const form = new FormData(e.target), next = {};
    for (const [k, v] of form) if (v) next[k] = v;
    location.hash = '#/tasks?' + new URLSearchParams(next).toString();
  };
}

function rolloutFacts(r) {
  if (!r) return '';
  const c = r.currentCohort;
  const cohort = c ? `${c.index + 1} of ${r.cohortCount} (${c.percentage == null ? 'named customers' : c.percentage + ' %'})` : 'not started';
  const next = r.nextCohortAt ? ' · next at ' + new Date(r.nextCohortAt).toLocaleString() : '';
  const paused = r.paused ? ` · <strong>paused</strong> by <code>${esc(r.pausedBy || '')}</code>` : '';
  return `<tr><th>rollout</th><td id="rollout-state">cohort ${cohort}${next}${paused} · cohorts ${esc(r.cohorts.join(', '))} %, ${esc(r.interval || '')} apart</td></tr>`;
}

function bulkControls() {
  const picked = () => [...document.querySelectorAll('input.pick:checked')].map((c) => c.value);
  const sync = () => { $('#bulk-retry').disabled = $('#bulk-cancel').disabled = picked().length === 0; };
  $('#task-table').addEventListener('change', sync);
  $('#pick-all').onchange = (e) => { document.querySelectorAll('input.pick').forEach((c) => { c.checked = e.target.checked; }); sync(); };
  const run = async (action) => {
    const ids = picked();
    if (!ids.length || !confirm(`${action === 'retry' ? 'Retry' : 'Cancel'} ${ids.length} task(s)?`)) return;
    try {
      const r = await api('/tasks/bulk', { method: 'POST', body: JSON.stringify({ action, ids }) });
      const refused = r.refused.map((x) => `${x.id.slice(0, 8)}: ${x.message}`).join('; ');
      const summary = `${r.done.length} ${action === 'retry' ? 'retried' : 'canceled'}, ${r.refused.length} refused${refused ? ' (' + refused + ')' : ''}`;
      await route();
      if ($('#bulk-result')) $('#bulk-result').textContent = summary;
    } catch (e) {
      alert(e.message);
    }
  };
  $('#bulk-retry').onclick = () => run('retry');
  $('#bulk-cancel').onclick = () => run('cancel');
}

// Rate, ETA and batches by state, from the `live` part of the task's detail or stream event.
function renderLive(t, live) {
  if (!live) return;
  const b = live.batches, total = b.pending + b.done + b.failed + b.canceled;
  const rate = live.ratePerSec == null ? '—' : `${live.ratePerSec.toFixed(1)} /s`;
  const ended = ['COMPLETED', 'FAILED', 'PARTIALLY_FAILED', 'CANCELED'].includes(t.status);
  const eta = ended ? 'ended' : live.etaSecs == null ? (t.rollout && t.rollout.paused ? 'paused' : '—') : seconds(live.etaSecs);
  $('#task-live').innerHTML = `<span class="muted">rate</span> <strong id="rate">${rate}</strong> <span class="muted">over the last ${live.rateWindowSecs} s</span>
    · <span class="muted">ETA</span> <strong id="eta">${eta}</strong>`;
  $('#batch-summary').textContent = total
    ? `${total} batch(es): ${b.pending} pending (queued or running), ${b.done} done, ${b.failed} failed, ${b.canceled} canceled`
    : (ended ? 'no batches: this task moves no ranges' : 'no batches planned yet');
  drawSparkline($('#sparkline'), live.throughput, live.throughputBucketSecs);
}

function batchRows(page) {
  return page.data.map((b) => `<tr data-seq="${b.seq}"><td>${b.seq}</td><td>${status(b.status)}</td><td>${b.moved}/${b.expected}</td><td>${b.failed}</td>
    <td>${b.attempts}</td><td><code>${esc(b.worker || '')}</code></td><td class="error">${esc(b.lastError || '')}</td></tr>`).join('')
    || '<tr><td colspan="7" class="muted">none</td></tr>';
}

// The failed and the pending batches, a page at a time: a task of a thousand batches lists
// twenty of each, with a pager.
const batchPages = { FAILED: [], PENDING: [] };
function renderBatchList(state, page) {
  const id = state === 'FAILED' ? 'failed-batches' : 'pending-batches';
  $('#' + id).innerHTML = batchRows(page);
  const trail = batchPages[state];
  $(`#${id}-pager`).innerHTML = `${trail.length ? `<button class="link" data-batches="${state}" data-after="first">← first</button> ` : ''}${page.next != null ? `<button class="link" data-batches="${state}" data-after="${page.next}">next ${BATCH_PAGE} →</button>` : ''}`;
}
const BATCH_PAGE = 20;

async function loadBatches(taskId, state, after) {
  const page = await api(`/tasks/${encodeURIComponent(taskId)}/batches?status=${state}&after=${after}`, { whole: true });
  renderBatchList(state, page);
}

function renderTask(d) {
  const t = d.task;
  $('#task-status').innerHTML = status(t.status);
  $('#task-progress').innerHTML = `${bar(t, true)}<div><span id="progress-value">${t.progress}</span>% · ${t.counts.processed} of ${t.counts.total} processed, ${t.counts.failed} failed · affected customers ${t.affectedCustomersCount}</div>`;
  renderLive(t, d.live);
  $('#task-actions').innerHTML = actions(t) + rollbackAction(t, d.movedFrom);
  if ($('#rollback')) $('#rollback').onclick = (e) => rollback(e.target, t, d.movedFrom);
  const link = (label, id, other) => other ? `<tr><th>${label}</th><td><a id="${id}" href="#/task/${esc(other)}"><code>${esc(other)}</code></a></td></tr>` : '';
  $('#task-facts').innerHTML = `<tr><th>type</th><td>${esc(t.taskType)}</td></tr>
    ${link('rollback of', 'rollback-of', t.rollbackOf)}${link('rolled back by', 'rolled-back-by', t.rolledBackBy)}
    ${t.taskType === 'ROLLBACK_MIGRATION' ? `<tr><th>skipped</th><td id="skipped-count">${t.skippedCount ?? 0}</td></tr>` : ''}
    <tr><th>plan</th><td>${esc(t.initiatedPackageId || '—')} ${t.targetVersion ? 'v' + t.targetVersion : ''}</td></tr>
    <tr><th>attempts</th><td>${t.attempts}</td></tr>${rolloutFacts(t.rollout)}${policyFacts(t)}
    <tr><th>error</th><td>${t.error ? `<code>${esc(t.error.code)}</code> ${esc(t.error.message)}` : '—'}</td></tr>
    <tr><th>started · ended</th><td>${t.startDate ? new Date(t.startDate).toLocaleString() : '—'} · ${t.endDate ? new Date(t.endDate).toLocaleString() : '—'}</td></tr>`;
  if (d.failedBatches) {
    // a list paged past its first page stays where the person put it
    if (!batchPages.FAILED.length) renderBatchList('FAILED', d.failedBatches);
    if (!batchPages.PENDING.length) renderBatchList('PENDING', d.pendingBatches);
    $('#failures').innerHTML = d.failures.map((f) => `<tr><td><code>${esc(f.subscriptionId)}</code></td><td><code>${esc(f.code)}</code></td><td>${esc(f.message)}</td></tr>`).join('') || '<tr><td colspan="3" class="muted">none</td></tr>';
    $('#timeline').innerHTML = '';
    seenEvents = new Set();
    d.events.forEach(addEvent);
  }
}

function addEvent(e) {
  // the stream replays rows the page already shows
  if (seenEvents.has(e.id)) return;
  seenEvents.add(e.id);
  const row = document.createElement('tr');
  row.innerHTML = `<td>${new Date(e.createdAt).toLocaleTimeString()}</td><td>${esc(e.kind)}</td><td>${esc(e.message)}</td><td><code>${esc(e.actor || 'system')}</code></td>`;
  $('#timeline').appendChild(row);
}

async function taskPage(id, rid) {
  batchPages.FAILED = []; batchPages.PENDING = [];
  $('#view').innerHTML = `<div id="task-page"><h1>Task <code>${esc(id)}</code> <span id="task-status"></span></h1>
    <div id="task-progress"></div>
    <p class="live-line"><span id="task-live"></span> <svg id="sparkline" class="sparkline"></svg></p>
    <p><span id="task-actions"></span> <button id="pause">Pause live updates</button> <span id="live" class="muted"></span></p>
    <table><tbody id="task-facts"></tbody></table>
    <h2>Batches</h2><p id="batch-summary" class="muted"></p>
    <h3>Failed batches</h3><table><thead><tr><th>#</th><th>state</th><th>moved</th><th>failed</th><th>attempts</th><th>worker</th><th>error</th></tr></thead><tbody id="failed-batches"></tbody></table>
    <p class="pager" id="failed-batches-pager"></p>
    <h3>Pending batches (queued or running)</h3><table><thead><tr><th>#</th><th>state</th><th>moved</th><th>failed</th><th>attempts</th><th>worker</th><th>error</th></tr></thead><tbody id="pending-batches"></tbody></table>
    <p class="pager" id="pending-batches-pager"></p>
    <h2>Failed items</h2><table><thead><tr><th>subscription</th><th>code</th><th>message</th></tr></thead><tbody id="failures"></tbody></table>
    <h2>Timeline</h2><table><thead><tr><th>when</th><th>what</th><th>message</th><th>who</th></tr></thead><tbody id="timeline"></tbody></table></div>`;
  let detail = await api('/tasks/' + encodeURIComponent(id));
  if (!current(rid)) return;
  renderTask(detail);
  $('#task-page').addEventListener('click', (e) => {
    const b = e.target.closest('button[data-batches]');
    if (!b) return;
    const state = b.dataset.batches, trail = batchPages[state];
    if (b.dataset.after === 'first') trail.length = 0; else trail.push(b.dataset.after);
    loadBatches(id, state, trail.length ? trail[trail.length - 1] : -1).catch((err) => alert(err.message));
  });
  let paused = false;
  const refresh = async () => {
    detail = await api('/tasks/' + encodeURIComponent(id));
    if (!current(rid)) return;
    renderTask(detail);
    for (const state of ['FAILED', 'PENDING']) {
      const trail = batchPages[state];
      if (trail.length) await loadBatches(id, state, trail[trail.length - 1]);
    }
  };
  const open = () => {
    source = new EventSource(`/dashboard/api/tasks/${encodeURIComponent(id)}/events`);
    $('#live').textContent = 'live';
    source.addEventListener('task', (m) => {
      const body = JSON.parse(m.data);
      detail.task = body.data;
      if (body.live) detail.live = body.live;
      renderTask({ ...detail, failedBatches: null });
    });
    source.addEventListener('event', (m) => addEvent(JSON.parse(m.data)));
    // "finished" once the page shows the final state: the stream's last event updates the
    // counts, the detail fetched after it the batch lists and timeline
    source.addEventListener('end', () => {
      source.close(); source = null;
      refresh().catch(() => {}).finally(() => { $('#live').textContent = 'finished'; });
    });
    source.onerror = () => { $('#live').textContent = 'reconnecting…'; };
  };
  $('#pause').onclick = () => {
    paused = !paused;
    $('#pause').textContent = paused ? 'Resume live updates' : 'Pause live updates';
    if (paused) { if (source) source.close(); source = null; $('#live').textContent = 'paused'; } else { refresh(); open(); }
  };
  if (!['COMPLETED', 'FAILED', 'PARTIALLY_FAILED', 'CANCELED'].includes(detail.task.status)) open();
  else $('#live').textContent = 'finished';
  timer = setInterval(() => { if (!paused && source) refresh().catch(() => {}); }, 3000);
}

async function plans(id) {
  const rows = await api('/plans');
  if (!current(id)) return;
  // a draft can be previewed: what publishing it would move, and whether it would fail
  const preview = (r) => me.canWrite && r.status === 'DRAFT' ? `<select class="preview-type" aria-label="migration type">
      <option>NEW_CUSTOMERS</option><option>ALL_CUSTOMERS</option></select>
      <button class="preview" data-plan="${esc(r.planId)}">Preview publish</button>` : '';
  $('#view').innerHTML = `<h1>Plans</h1><table><thead><tr><th>plan</th><th>version</th><th>status</th><th>name</th><th>published</th><th>subscriptions</th><th></th></tr></thead><tbody>
    ${rows.map((r) => `<tr data-plan="${esc(r.planId)}" data-version="${r.version}"><td><a href="#/tasks?plan=${encodeURIComponent(r.planId)}">${esc(r.planId)}</a></td><td>v${r.version}</td><td>${esc(r.status)}</td><td>${esc(r.displayName)}</td>
      <td>${r.publishedAt ? new Date(r.publishedAt).toLocaleString() : '—'}</td><td>${r.subscriptions}</td><td>${preview(r)}</td></tr>`).join('') || '<tr><td colspan="7" class="muted">no plans</td></tr>'}</tbody></table>
    <div id="preview"></div>`;
  document.querySelectorAll('button.preview').forEach((b) => { b.onclick = () => previewPublish(b); });
}

async function previewPublish(button) {
  const plan = button.dataset.plan, migrationType = button.parentElement.querySelector('.preview-type').value;
  try {
    const p = await api(`/plans/${encodeURIComponent(plan)}/publish/preview`, { method: 'POST', body: JSON.stringify({ migrationType }) });
    const from = p.byFromVersion.map((f) => `${f.count} from v${f.version}`).join(', ') || 'none';
    $('#preview').innerHTML = `<h2>Publishing ${esc(plan)} v${p.targetVersion} (${esc(migrationType)}) would</h2><table><tbody>
      <tr><th>move</th><td id="preview-subscriptions">${p.affectedSubscriptionsCount}</td></tr>
      <tr><th>customers</th><td id="preview-customers">${p.affectedCustomersCount}</td></tr>
      <tr><th>from</th><td>${esc(from)}</td></tr>
      <tr><th>would fail</th><td id="preview-would-fail">${p.wouldFail ? `<span class="error"><code>${esc(p.wouldFail.code)}</code> ${esc(p.wouldFail.message)}</span>` : 'no'}</td></tr>
      </tbody></table><p class="muted">nothing was changed</p>`;
  } catch (e) {
    $('#preview').innerHTML = `<p class="error">${esc(e.message)}</p>`;
  }
}

async function route() {
  stop();
  const id = ++routeId;
  const hash = location.hash || '#/overview';
  const [path, query] = hash.slice(1).split('?');
  const parts = path.split('/').filter(Boolean);
  document.querySelectorAll('#nav a').forEach((a) => a.classList.toggle('active', a.dataset.page === ({ task: 'tasks', 'dead-letter': 'dead-letters' }[parts[0]] || parts[0])));
  try {
    if (parts[0] === 'tasks') await tasks(Object.fromEntries(new URLSearchParams(query || '')), id);
    else if (parts[0] === 'task' && parts[1]) await taskPage(decodeURIComponent(parts[1]), id);
    else if (parts[0] === 'plans') await plans(id);
    else if (parts[0] === 'dead-letters') await deadLetters(Object.fromEntries(new URLSearchParams(query || '')), id);
    else if (parts[0] === 'dead-letter' && parts[1]) await deadLetterPage(decodeURIComponent(parts[1]), id);
    else if (parts[0] === 'webhooks') await webhooksPage(Object.fromEntries(new URLSearchParams(query || '')), id);
    else { await overview(id); if (current(id)) timer = setInterval(() => overview(id).catch(() => {}), 2000); }
  } catch (e) {
    if (e.status === 401) return showSignIn();
    if (current(id)) $('#view').innerHTML = `<p class="error">${esc(e.message)}</p>`;
  }
}

function showSignIn() {
  stop();
  me = null;
  $('#nav').hidden = true; $('#sign-out').hidden = true; $('#who').textContent = '';
  $('#view').innerHTML = '';
  $('#sign-in').hidden = false;
}

async function start() {
  try { me = await api('/me'); } catch (e) { return showSignIn(); }
  $('#sign-in').hidden = true;
  $('#nav').hidden = false; $('#sign-out').hidden = false;
  $('#who').textContent = `${me.keyPrefix}… (${me.scope})`;
  document.body.dataset.scope = me.scope;
  route();
}

$('#sign-in').onsubmit = async (e) => {
  e.preventDefault();
  $('#sign-in-error').textContent = '';
  try {
    await api('/sign-in', { method: 'POST', body: JSON.stringify({ key: $('#key').value }) });
    $('#key').value = '';
    start();
  } catch (err) {
    $('#sign-in-error').textContent = err.message;
  }
};
$('#sign-out').onclick = async () => { await api('/sign-out', { method: 'POST' }).catch(() => {}); showSignIn(); };
$('#view').addEventListener('click', (e) => { const b = e.target.closest('button[data-act]'); if (b) act(b); });
window.addEventListener('hashchange', () => { if (me) route(); });
start();
