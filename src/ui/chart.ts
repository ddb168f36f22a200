import { html, type Html } from './html';
import type { ThroughputSeries } from './overview-data';

/** The throughput chart as plain SVG (bars per period: sent, received, failed) with the same figures as a table. */

const SERIES = ['sent', 'received', 'failed'] as const;
const WIDTH = 720;
const HEIGHT = 200;
const LEFT = 40;
const BOTTOM = 24;
const TOP = 8;

function label(period: string, unit: ThroughputSeries['unit']): string {
  return unit === 'hour' ? `${period.slice(0, 10)} ${period.slice(11)}:00Z` : period;
}

export function throughputChart(id: string, title: string, s: ThroughputSeries): Html {
  const max = Math.max(1, ...s.rows.flatMap((r) => SERIES.map((k) => r[k])));
  const plotW = WIDTH - LEFT - 8;
  const plotH = HEIGHT - TOP - BOTTOM;
  const slot = plotW / s.rows.length;
  const bar = Math.max(1, (slot - 2) / SERIES.length);
  const every = s.unit === 'hour' ? 6 : 5;
  const groups = s.rows.map((r, i) => {
    const x0 = LEFT + i * slot + 1;
    const tip = `${label(r.period, s.unit)}: ${r.sent} sent, ${r.received} received, ${r.failed} failed`;
    const bars = SERIES.map((k, j) => {
      const h = (r[k] / max) * plotH;
      return html`<rect class="bar ${k}" x="${(x0 + j * bar).toFixed(1)}" y="${(TOP + plotH - h).toFixed(1)}" width="${bar.toFixed(1)}" height="${h.toFixed(1)}"></rect>`;
    });
    const tick = i % every === 0 ? html`<text class="tick" x="${x0.toFixed(1)}" y="${HEIGHT - 6}">${s.unit === 'hour' ? r.period.slice(11) + ':00' : r.period.slice(5)}</text>` : '';
    return html`<g class="period" data-tip="${tip}"><title>${tip}</title><rect class="hit" x="${x0.toFixed(1)}" y="${TOP}" width="${(slot - 1).toFixed(1)}" height="${plotH}"></rect>${bars}${tick}</g>`;
  });
  const totals = SERIES.map((k) => `${s.rows.reduce((n, r) => n + r[k], 0)} ${k}`).join(', ');
  return html`<figure class="chart">
<figcaption id="${id}-caption">${title} (${totals})</figcaption>
<svg role="img" aria-labelledby="${id}-caption" viewBox="0 0 ${WIDTH} ${HEIGHT}" preserveAspectRatio="xMidYMid meet">
<line class="axis" x1="${LEFT}" y1="${TOP + plotH}" x2="${WIDTH - 8}" y2="${TOP + plotH}"></line>
<text class="tick" x="${LEFT - 6}" y="${TOP + 10}" text-anchor="end">${max}</text>
<text class="tick" x="${LEFT - 6}" y="${TOP + plotH}" text-anchor="end">0</text>
${groups}
</svg>
<ul class="legend">${SERIES.map((k) => html`<li><span class="swatch ${k}"></span>${k}</li>`)}</ul>
<details>
<summary>${title} as a table</summary>
<div class="scroll"><table>
<thead><tr><th scope="col">${s.unit === 'hour' ? 'Hour (UTC)' : 'Day (UTC)'}</th><th scope="col">Sent</th><th scope="col">Received</th><th scope="col">Failed</th></tr></thead>
<tbody>${s.rows.map((r) => html`<tr><th scope="row">${label(r.period, s.unit)}</th><td>${r.sent}</td><td>${r.received}</td><td>${r.failed}</td></tr>`)}</tbody>
</table></div>
</details>
</figure>`;
}
