// The Webhooks page: endpoints, and one endpoint's deliveries with every attempt and what the
// receiver answered. Admin sessions get a Replay button on deliveries that have ended; a
// read-only session gets none (and the server refuses a replay from it anyway).
// Uses app.js's helpers ($, esc, api, status, current, me); app.js routes #/webhooks here.
'use strict';

function webhookDeliveryRows(d) {
  const replay = me.canWrite && d.status !== 'PENDING'
    ? `<button data-replay="${esc(d.id)}">Replay</button>` : '';
  const origin = d.replayOf ? `<div class="muted">replay of <code>${esc(d.replayOf.slice(0, 8))}</code> by <code>${esc(d.replayedBy || '')}</code></div>` : '';
  const next = d.nextAttemptAt ? `<div class="muted">next attempt ${new Date(d.nextAttemptAt).toLocaleTimeString()}</div>` : '';
  const attempts = d.attempts.map((a) => `<tr class="attempt"><td></td><td>#${a.attempt}</td>
      <td>${new Date(a.startedAt).toLocaleTimeString()} · ${a.durationMs} ms</td>
      <td>${a.statusCode != null ? `<code>${a.statusCode}</code>` : '—'}</td>
      <td colspan="2">${a.error ? `<span class="error">${esc(a.error)}</span> ` : ''}<code>${esc(a.responseBody || '')}</code></td></tr>`).join('');
  return `<tr class="delivery" data-delivery="${esc(d.id)}"><td><code>${esc(d.event.type)}</code></td>
      <td><code title="${esc(d.event.id)}">${esc(d.event.id.slice(0, 8))}</code></td>
      <td>${new Date(d.createdAt).toLocaleString()}</td><td>${status(d.status)}${next}${origin}</td>
      <td class="attempt-count">${d.attempts.length}</td><td>${replay}</td></tr>${attempts}`;
}

async function webhooksPage(params, id) {
  const endpoints = await api('/webhooks?limit=1000');
  if (!current(id)) return;
  const chosen = params.id || (endpoints[0] && endpoints[0].id);
  const list = endpoints.map((w) => `<tr${w.id === chosen ? ' class="chosen"' : ''}><td><a href="#/webhooks?id=${encodeURIComponent(w.id)}"><code>${esc(w.id.slice(0, 8))}</code></a></td>
      <td>${esc(w.url)}</td><td>${w.events.map((e) => `<code>${esc(e)}</code>`).join(' ')}</td>
      <td>${new Date(w.createdAt).toLocaleString()}</td></tr>`).join('');
  let deliveries = '';
  if (chosen) {
    const rows = await api(`/webhooks/${encodeURIComponent(chosen)}/deliveries?limit=100`);
    if (!current(id)) return;
    deliveries = `<h2>Deliveries to <code>${esc(chosen.slice(0, 8))}</code></h2>
      <table id="deliveries"><thead><tr><th>event</th><th>event id</th><th>created</th><th>state</th><th>attempts</th><th></th></tr></thead>
      <tbody>${rows.map(webhookDeliveryRows).join('') || '<tr><td colspan="6" class="muted">no deliveries yet</td></tr>'}</tbody></table>`;
  }
  $('#view').innerHTML = `<h1>Webhooks</h1>
    <table id="webhooks"><thead><tr><th>id</th><th>url</th><th>events</th><th>created</th></tr></thead>
    <tbody>${list || '<tr><td colspan="4" class="muted">no webhooks; register one with POST /api/v1/webhooks</td></tr>'}</tbody></table>
    ${deliveries}`;
  $('#view').querySelectorAll('button[data-replay]').forEach((button) => {
    button.onclick = async () => {
      const delivery = button.dataset.replay;
      if (!confirm(`Replay delivery ${delivery}?`)) return;
      try {
        await api(`/webhooks/deliveries/${encodeURIComponent(delivery)}/replay`, { method: 'POST' });
        route();
      } catch (e) {
        alert(e.message);
      }
    };
  });
}
