// The Webhooks page: endpoints with their health, and one endpoint's deliveries with their
// state, every attempt and what the receiver answered, and each one's payload. Admin sessions
// get Replay on deliveries that have ended, and on the chosen endpoint a test event, disable /
// enable, secret rotation (the new secret shown once) and an edit form; a read-only session
// gets none of these (and the server refuses them from it anyway).
// Uses app.js's helpers ($, esc, api, status, current, me); app.js routes #/webhooks here.
'use strict';

function webhookTime(t) { return t ? new Date(t).toLocaleString() : '—'; }

// An endpoint's health as its recorded attempts tell it.
function webhookHealth(w) {
  const h = w.health;
  if (!h.lastAttemptAt) return '<span class="muted">no attempts yet</span>';
  const last = h.lastStatusCode != null ? `<code>${h.lastStatusCode}</code>` : '<span class="error">no answer</span>';
  const streak = h.failingStreak > 0
    ? `<span class="error health-streak">failing ×${h.failingStreak}</span>` : '<span class="s-DELIVERED health-streak">ok</span>';
  return `${streak} · last ${last} · last success ${webhookTime(h.lastSuccessAt)}`;
}

function webhookDeliveryRows(d) {
  const replay = me.canWrite && (d.status === 'DELIVERED' || d.status === 'FAILED')
    ? `<button data-replay="${esc(d.id)}">Replay</button>` : '';
  const origin = d.replayOf ? `<div class="muted">replay of <code>${esc(d.replayOf.slice(0, 8))}</code> by <code>${esc(d.replayedBy || '')}</code></div>` : '';
  const next = d.nextAttemptAt ? `<div class="muted next-attempt">next attempt ${new Date(d.nextAttemptAt).toLocaleTimeString()}</div>` : '';
  const attempts = d.attempts.length ? `<tr class="attempts"><td></td><td colspan="6"><table class="attempt-table">
      <thead><tr><th>attempt</th><th>started</th><th>duration</th><th>status</th><th>error</th><th>answer</th></tr></thead><tbody>
      ${d.attempts.map((a) => `<tr class="attempt"><td>#${a.attempt}</td><td>${new Date(a.startedAt).toLocaleTimeString()}</td>
      <td>${a.durationMs} ms</td><td>${a.statusCode != null ? `<code>${a.statusCode}</code>` : '—'}</td>
      <td>${a.error ? `<span class="error">${esc(a.error)}</span>` : ''}</td><td><code>${esc(a.responseBody || '')}</code></td></tr>`).join('')}
      </tbody></table></td></tr>` : '';
  return `<tr class="delivery" data-delivery="${esc(d.id)}"><td><code>${esc(d.event.type)}</code></td>
      <td><code title="${esc(d.event.id)}">${esc(d.event.id.slice(0, 8))}</code></td>
      <td>${new Date(d.createdAt).toLocaleString()}</td><td class="delivery-state">${status(d.status)}${next}${origin}</td>
      <td class="attempt-count">${d.attempts.length}</td><td><button data-payload="${esc(d.id)}">Payload</button></td><td>${replay}</td></tr>${attempts}`;
}

// The chosen endpoint: its health, and for admin sessions what can be done to it.
function webhookDetail(w) {
  const overlap = w.previousSecretUntil ? `<p class="muted">the previous secret also signs until ${webhookTime(w.previousSecretUntil)}</p>` : '';
  const actions = me.canWrite ? `<p id="webhook-actions">
      <button id="webhook-test">Send test event</button>
      <button id="webhook-toggle">${w.enabled ? 'Disable' : 'Enable'}</button>
      <button id="webhook-rotate" class="danger">Rotate secret</button></p>
    <form id="webhook-edit"><label>url <input id="webhook-url" size="60" value="${esc(w.url)}"></label>
      <label>events <input id="webhook-events" size="50" value="${esc(w.events.join(', '))}"></label>
      <button type="submit">Save</button></form>
    <div id="webhook-secret" hidden></div>` : '';
  return `<section id="webhook-detail"><h2>Endpoint <code>${esc(w.id.slice(0, 8))}</code> ${w.enabled ? '' : '<span class="status s-DISABLED">DISABLED</span>'}</h2>
    <p id="webhook-health">${webhookHealth(w)}${w.health.lastError ? ` · <span class="error">${esc(w.health.lastError)}</span>` : ''}</p>
    ${overlap}${actions}</section>`;
}

// Runs an admin action; on success, draws the page again (or does `after`).
async function webhookAction(path, options, after) {
  try {
    const answer = await api(path, options);
    if (after) after(answer); else route();
  } catch (e) {
    alert(e.message);
  }
}

async function webhooksPage(params, id) {
  const endpoints = await api('/webhooks?limit=1000');
  if (!current(id)) return;
  const chosen = params.id || (endpoints[0] && endpoints[0].id);
  const endpoint = endpoints.find((w) => w.id === chosen);
  const list = endpoints.map((w) => `<tr${w.id === chosen ? ' class="chosen"' : ''}><td><a href="#/webhooks?id=${encodeURIComponent(w.id)}"><code>${esc(w.id.slice(0, 8))}</code></a></td>
      <td>${esc(w.url)}</td><td>${w.events.map((e) => `<code>${esc(e)}</code>`).join(' ')}</td>
      <td>${w.enabled ? 'enabled' : '<span class="status s-DISABLED">DISABLED</span>'}</td><td class="webhook-health">${webhookHealth(w)}</td>
      <td>${new Date(w.createdAt).toLocaleString()}</td></tr>`).join('');
  let deliveries = '';
  if (endpoint) {
    const rows = await api(`/webhooks/${encodeURIComponent(chosen)}/deliveries?limit=100`);
    if (!current(id)) return;
    deliveries = `${webhookDetail(endpoint)}<h2>Deliveries to <code>${esc(chosen.slice(0, 8))}</code></h2>
      <table id="deliveries"><thead><tr><th>event</th><th>event id</th><th>created</th><th>state</th><th>attempts</th><th>payload</th><th></th></tr></thead>
      <tbody>${rows.map(webhookDeliveryRows).join('') || '<tr><td colspan="7" class="muted">no deliveries yet</td></tr>'}</tbody></table>
      <section id="payload-view" hidden><h2>Payload of delivery <code id="payload-delivery"></code></h2>
      <p class="muted">the exact body sent and signed</p><pre id="payload"></pre></section>`;
  }
  $('#view').innerHTML = `<h1>Webhooks <button id="webhooks-refresh">Refresh</button></h1>
    <table id="webhooks"><thead><tr><th>id</th><th>url</th><th>events</th><th>state</th><th>health</th><th>created</th></tr></thead>
    <tbody>${list || '<tr><td colspan="6" class="muted">no webhooks; register one with POST /api/v1/webhooks</td></tr>'}</tbody></table>
    ${deliveries}`;
  const view = $('#view');
  $('#webhooks-refresh').onclick = () => route();
  view.querySelectorAll('button[data-replay]').forEach((button) => {
    button.onclick = async () => {
      const delivery = button.dataset.replay;
      if (!confirm(`Replay delivery ${delivery}?`)) return;
      await webhookAction(`/webhooks/deliveries/${encodeURIComponent(delivery)}/replay`, { method: 'POST' });
    };
  });
  view.querySelectorAll('button[data-payload]').forEach((button) => {
    button.onclick = async () => {
      const delivery = button.dataset.payload;
      await webhookAction(`/webhooks/deliveries/${encodeURIComponent(delivery)}/payload`, {}, (p) => {
        $('#payload-delivery').textContent = delivery.slice(0, 8);
        $('#payload').textContent = p.body;
        $('#payload-view').hidden = false;
      });
    };
  });
  if (!endpoint || !me.canWrite) return;
  const base = `/webhooks/${encodeURIComponent(endpoint.id)}`;
  $('#webhook-test').onclick = () => webhookAction(`${base}/test`, { method: 'POST' });
  $('#webhook-toggle').onclick = () => {
    if (endpoint.enabled && !confirm(`Disable webhook ${endpoint.id}? It gets no new deliveries until enabled again.`)) return;
    return webhookAction(base, { method: 'PATCH', body: JSON.stringify({ enabled: !endpoint.enabled }) });
  };
  $('#webhook-rotate').onclick = () => {
    if (!confirm(`Rotate the signing secret of webhook ${endpoint.id}? The old secret keeps signing for 24 hours.`)) return;
    return webhookAction(`${base}/rotate-secret`, { method: 'POST', body: '{}' }, (w) => {
      const box = $('#webhook-secret');
      box.innerHTML = `<p>New secret, shown this once: <code id="new-secret">${esc(w.secret)}</code></p>
        <p class="muted">deliveries are signed with both secrets until ${webhookTime(w.previousSecretUntil)}</p>`;
      box.hidden = false;
    });
  };
  $('#webhook-edit').onsubmit = (event) => {
    event.preventDefault();
    const events = $('#webhook-events').value.split(',').map((e) => e.trim()).filter(Boolean);
    return webhookAction(base, { method: 'PATCH', body: JSON.stringify({ url: $('#webhook-url').value.trim(), events }) });
  };
}
