// Dead letters: the list, one message inspected, replay and discard. Loaded before app.js,
// whose helpers ($, api, esc, status, current, route, me) these functions use when called.
'use strict';

const DEAD_LETTER_STATUSES = ['DEAD', 'REPLAYED', 'DISCARDED'];

function deadLetterActions(d) {
  if (!me.canWrite || d.status !== 'DEAD') return '';
  const replay = d.jobKind ? `<button data-dl-act="replay" data-id="${d.id}">Replay</button> ` : '';
  return `${replay}<button class="danger" data-dl-act="discard" data-id="${d.id}">Discard</button>`;
}

function deadLetterTask(d) {
  if (!d.taskId) return '—';
  const what = d.jobKind === 'batch' ? ` batch ${d.batchSeq}` : d.jobKind ? ' task' : '';
  return `<a href="#/task/${esc(d.taskId)}"><code>${esc(d.taskId.slice(0, 8))}</code></a>${what}`;
}

async function deadLetters(params, id) {
  const query = new URLSearchParams(params);
  const rows = await api('/dead-letters?' + query.toString());
  if (!current(id)) return;
  const opts = '<option value="">any</option>' + DEAD_LETTER_STATUSES.map((v) => `<option${v === params.status ? ' selected' : ''}>${v}</option>`).join('');
  const body = rows.map((d) => `<tr data-dead-letter="${d.id}"><td><a href="#/dead-letter/${d.id}">#${d.id}</a></td>
      <td>${new Date(d.receivedAt).toLocaleString()}</td><td>${deadLetterTask(d)}</td>
      <td><code>${esc(d.causeCode)}</code> ${esc(d.cause)}</td>
      <td>${esc(d.reason)}${d.deathCount > 1 ? ' ×' + d.deathCount : ''}<div class="muted">${esc(d.originalQueue || '')}</div></td>
      <td>${status(d.status)}${d.resolvedBy ? ` <span class="muted">by <code>${esc(d.resolvedBy)}</code></span>` : ''}</td>
      <td>${deadLetterActions(d)}</td></tr>`).join('');
  $('#view').innerHTML = `<h1>Dead letters</h1>
    <p class="muted">Messages the workers gave up on, moved here from the dead-letter queue. Replay sends one again
      (a failed task is re-opened first, as Retry does); discard keeps it for the record and never sends it.</p>
    <form class="filters" id="dl-filters"><label>status <select name="status">${opts}</select></label><button type="submit">Filter</button></form>
    <table id="dead-letter-table"><thead><tr><th>id</th><th>received</th><th>task</th><th>why</th><th>death</th><th>state</th><th></th></tr></thead>
    <tbody>${body || '<tr><td colspan="7" class="muted">no dead letters</td></tr>'}</tbody></table>`;
  $('#dl-filters').onsubmit = (e) => {
    e.preventDefault();
    const s = new FormData(e.target).get('status');
    location.hash = '#/dead-letters' + (s ? '?status=' + encodeURIComponent(s) : '');
  };
}

async function deadLetterPage(dlId, rid) {
  const d = await api('/dead-letters/' + encodeURIComponent(dlId));
  if (!current(rid)) return;
  $('#view').innerHTML = `<h1>Dead letter #${d.id} <span id="dead-letter-status">${status(d.status)}</span></h1>
    <p id="dead-letter-actions">${deadLetterActions(d)}</p>
    <table><tbody id="dead-letter-facts">
      <tr><th>why</th><td><code id="dead-letter-cause-code">${esc(d.causeCode)}</code> <span id="dead-letter-cause">${esc(d.cause)}</span></td></tr>
      <tr><th>task</th><td>${deadLetterTask(d)}</td></tr>
      <tr><th>death</th><td>${esc(d.reason)} in <code>${esc(d.originalQueue || '?')}</code>, routing key <code>${esc(d.routingKey || '?')}</code>, ${d.deathCount} time(s), first at ${d.deadAt ? new Date(d.deadAt).toLocaleString() : '—'}</td></tr>
      <tr><th>received</th><td>${new Date(d.receivedAt).toLocaleString()}</td></tr>
      <tr><th>resolved</th><td>${d.resolvedBy ? `${esc(d.status)} by <code>${esc(d.resolvedBy)}</code> at ${new Date(d.resolvedAt).toLocaleString()}` : '—'}</td></tr>
    </tbody></table>
    <h2>Body <span class="muted">(${d.bytes} bytes, ${esc(d.bodyEncoding)})</span></h2><pre id="dead-letter-body">${esc(d.body)}</pre>
    <h2>Headers</h2><pre id="dead-letter-headers">${esc(JSON.stringify(d.headers, null, 2))}</pre>`;
}

async function deadLetterAct(button) {
  const verb = button.dataset.dlAct, id = button.dataset.id;
  const question = verb === 'replay'
    ? `Replay dead letter #${id}? Its message is sent again (a failed task is re-opened first).`
    : `Discard dead letter #${id}? It will never be sent again.`;
  if (!confirm(question)) return;
  try {
    await api(`/dead-letters/${encodeURIComponent(id)}/${verb}`, { method: 'POST' });
    route();
  } catch (e) {
    alert(e.message);
  }
}

document.addEventListener('click', (e) => {
  const b = e.target.closest('button[data-dl-act]');
  if (b) deadLetterAct(b);
});
