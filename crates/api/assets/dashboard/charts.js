// Charts drawn as SVG through the DOM (no inline style attributes: the page's
// Content-Security-Policy refuses them). Loaded before app.js.
'use strict';

const SVG = 'http://www.w3.org/2000/svg';

function svgEl(tag, attrs, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  if (text != null) el.textContent = String(text);
  return el;
}

// A task's throughput: one bar per bucket, oldest first, scaled to the tallest.
function drawSparkline(svg, values, bucketSecs) {
  const w = 300, h = 40, n = Math.max(1, values.length), gap = 1;
  const max = Math.max(0, ...values);
  svg.replaceChildren();
  svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
  svg.setAttribute('width', w);
  svg.setAttribute('height', h);
  svg.setAttribute('role', 'img');
  const perSec = (v) => (v / bucketSecs).toFixed(1);
  svg.setAttribute('aria-label', `items per second over the last ${Math.round(n * bucketSecs / 60)} min, peak ${perSec(max)}/s`);
  svg.appendChild(svgEl('line', { x1: 0, y1: h - 0.5, x2: w, y2: h - 0.5, class: 'axis' }));
  values.forEach((v, i) => {
    const bh = max > 0 ? (v / max) * (h - 2) : 0;
    const bar = svgEl('rect', { x: (i * w) / n, y: h - 1 - bh, width: Math.max(1, w / n - gap), height: bh, class: 'spark-bar', 'data-value': v });
    bar.appendChild(svgEl('title', {}, `${perSec(v)}/s`));
    svg.appendChild(bar);
  });
}

// A tick value at or above `max` that reads well: 1, 2 or 5 times a power of ten.
function niceMax(max) {
  if (max <= 0) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(max)));
  return [1, 2, 5, 10].map((m) => m * p).find((m) => m >= max);
}

// One panel of the overview chart: bars per minute with a labelled y axis. `series` is
// [{key, cls, label}] stacked bottom to top.
function chartPanel(svg, minutes, series, top, height, title, geometry) {
  const { left, width } = geometry;
  const n = Math.max(1, minutes.length);
  const totals = minutes.map((m) => series.reduce((s, x) => s + (m[x.key] || 0), 0));
  const max = niceMax(Math.max(0, ...totals));
  const y = (v) => top + height - (v / max) * height;
  const g = svgEl('g', { class: 'panel', 'data-max': max });
  g.appendChild(svgEl('text', { x: left, y: top - 6, class: 'chart-title' }, title));
  for (const tick of [0, max / 2, max]) {
    g.appendChild(svgEl('line', { x1: left, x2: left + width, y1: y(tick), y2: y(tick), class: tick === 0 ? 'axis' : 'grid' }));
    g.appendChild(svgEl('text', { x: left - 6, y: y(tick) + 4, class: 'tick y-tick', 'text-anchor': 'end' }, Number.isInteger(tick) ? tick : tick.toFixed(1)));
  }
  g.appendChild(svgEl('line', { x1: left, x2: left, y1: top, y2: top + height, class: 'axis' }));
  const slot = width / n;
  minutes.forEach((m, i) => {
    let base = 0;
    for (const s of series) {
      const v = m[s.key] || 0;
      if (v > 0) {
        const bar = svgEl('rect', { x: left + i * slot + 1, y: y(base + v), width: Math.max(1, slot - 2), height: y(base) - y(base + v),
          class: `bar-${s.cls}`, 'data-minute': m.minute, 'data-value': v });
        bar.appendChild(svgEl('title', {}, `${new Date(m.minute).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })}: ${v} ${s.label}`));
        g.appendChild(bar);
      }
      base += v;
    }
  });
  svg.appendChild(g);
}

// The overview's chart: subscriptions moved per minute above, tasks finished per minute
// below, over a shared time axis.
function drawOverviewChart(svg, minutes) {
  const W = 900, H = 300, geometry = { left: 56, width: W - 56 - 16 };
  svg.replaceChildren();
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  svg.setAttribute('width', W);
  svg.setAttribute('height', H);
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', 'subscriptions moved and tasks finished per minute, last 60 minutes');
  chartPanel(svg, minutes, [{ key: 'moved', cls: 'moved', label: 'subscriptions moved' }], 24, 120, 'subscriptions moved per minute', geometry);
  chartPanel(svg, minutes, [{ key: 'completed', cls: 'completed', label: 'completed' }, { key: 'failed', cls: 'failed', label: 'failed or partly failed' }],
    186, 80, 'tasks finished per minute (completed · failed)', geometry);
  // the time axis: minutes ago, and the clock time of the last minute
  const n = Math.max(1, minutes.length), slot = geometry.width / n;
  [0, 15, 30, 45, n - 1].forEach((i) => {
    if (!minutes[i]) return;
    const x = geometry.left + i * slot + slot / 2;
    const ago = n - 1 - i;
    const label = ago === 0 ? new Date(minutes[i].minute).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }) : `−${ago} min`;
    svg.appendChild(svgEl('line', { x1: x, x2: x, y1: 266, y2: 270, class: 'axis' }));
    svg.appendChild(svgEl('text', { x, y: 284, class: 'tick x-tick', 'text-anchor': 'middle' }, label));
  });
  svg.appendChild(svgEl('text', { x: geometry.left + geometry.width, y: 298, class: 'tick', 'text-anchor': 'end' }, 'minutes ago · now in local time'));
}
