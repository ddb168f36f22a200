import { ALL_STATES, isMessageState, type BrowseFilter, type EventRow, type MessageRow, type MessageState } from '../ledger';
import { throughputChart } from './chart';
import { html, type Html } from './html';
import { actions, badge, page, recommendedAction, text, time, type PageContext } from './layout';
import type { MailboxOverview, Overview } from './overview-data';

/** The console's four pages, rendered from plain data (the server gathers it). */

export const PAGE_SIZE = 50;
export const ATTENTION_STATES: MessageState[] = ['needs_review', 'failed', 'quarantined'];

// ---------------------------------------------------------------------------------------
// Overview

function countsTable(m: MailboxOverview): Html {
  const states = ALL_STATES.filter((s) => m.counts.out[s] || m.counts.in[s]);
  if (states.length === 0) return html`<p>No messages yet.</p>`;
  return html`<div class="scroll"><table class="counts">
<caption>Messages by state, ${m.id}</caption>
<thead><tr><th scope="col">State</th><th scope="col">Outbound</th><th scope="col">Inbound</th></tr></thead>
<tbody>${states.map(
    (s) => html`<tr><th scope="row"><a href="/messages?mailbox=${m.id}&amp;state=${s}">${badge(s)}</a></th><td>${m.counts.out[s] ?? 0}</td><td>${m.counts.in[s] ?? 0}</td></tr>`,
  )}</tbody>
</table></div>`;
}

function oldest(row: MessageRow | undefined): Html {
  return row ? html`<a href="/messages/${row.id}">#${row.id}</a> since ${time(row.createdAt)}` : html`none`;
}

function certificateText(c: MailboxOverview['certificate']): Html {
  if (!c) return html`none configured (plain http)`;
  if ('error' in c) return html`<strong class="bad">unreadable</strong>: ${c.error}`;
  const until = c.notAfter.toISOString().slice(0, 10);
  if (c.expired) return html`<strong class="bad">expired on ${until}</strong>: MESH refuses every request`;
  if (c.expiresSoon) return html`<strong class="warn">expires in ${c.daysLeft} days</strong> (${until}): renew it (docs/operations.md)`;
  return html`valid until ${until} (${c.daysLeft} days)`;
}

function mailboxCard(m: MailboxOverview): Html {
  const poll = m.status?.lastPollAt
    ? html`${time(m.status.lastPollAt)} ${m.status.lastPollOk ? html`<span class="ok">ok</span>` : html`<strong class="bad">failed</strong>: ${m.status.lastPollError ?? 'unknown error'}`}`
    : html`<span class="none">never</span>`;
  return html`<section class="mailbox" aria-labelledby="mb-${m.id}">
<h2 id="mb-${m.id}">${m.id} <span class="verdict ${m.ready ? 'ready' : 'not-ready'}">${m.ready ? 'Ready' : 'Not ready'}</span></h2>
<dl class="facts">
<dt>Last poll</dt><dd>${poll}</dd>
<dt>Last handshake</dt><dd>${time(m.status?.lastHandshakeAt)}</dd>
<dt>Oldest sent, not acknowledged</dt><dd>${oldest(m.oldestSentUnacknowledged)}</dd>
<dt>Oldest received, not acknowledged</dt><dd>${oldest(m.oldestDeliveredUnacknowledged)}</dd>
<dt>Client certificate</dt><dd>${certificateText(m.certificate)}</dd>
<dt>Readiness checks</dt><dd><ul class="checks">${Object.entries(m.checks).map(
    ([name, c]) => html`<li><span class="${c.ok ? 'ok' : 'bad'}">${c.ok ? 'ok' : 'failing'}</span> ${name}${c.detail ? `: ${c.detail}` : ''}</li>`,
  )}</ul></dd>
</dl>
${countsTable(m)}
</section>`;
}

export function overviewPage(o: Overview): Html {
  const body = html`<p class="note">Live view of the ledger; this page refreshes every 30 seconds when JavaScript is on.</p>
${o.mailboxes.map(mailboxCard)}
<section aria-labelledby="throughput">
<h2 id="throughput">Throughput</h2>
${throughputChart('hourly', 'Last 24 hours, per hour', o.hourly)}
${throughputChart('daily', 'Last 30 days, per day', o.daily)}
</section>`;
  return page('Overview', '/', body, { refresh: true });
}

// ---------------------------------------------------------------------------------------
// Messages

/** The messages page's query string, checked: what is not valid is dropped and named. */
export function parseBrowseQuery(q: URLSearchParams, mailboxes: string[]): { filter: BrowseFilter; values: Record<string, string>; ignored: string[] } {
  const filter: BrowseFilter = { limit: PAGE_SIZE };
  const values: Record<string, string> = {};
  const ignored: string[] = [];
  const take = (name: string, ok: (v: string) => boolean, set: (v: string) => void) => {
    const v = (q.get(name) ?? '').trim();
    if (!v) return;
    if (!ok(v) || v.length > 200) return void ignored.push(name);
    values[name] = v;
    set(v);
  };
  const day = (v: string) => /^\d{4}-\d{2}-\d{2}$/.test(v) && !Number.isNaN(Date.parse(v + 'T00:00:00Z'));
  take('mailbox', (v) => mailboxes.includes(v), (v) => (filter.mailbox = v));
  take('direction', (v) => v === 'in' || v === 'out', (v) => (filter.direction = v as 'in' | 'out'));
  take('state', isMessageState, (v) => (filter.state = v as MessageState));
  take('workflow', () => true, (v) => (filter.workflow = v));
  take('from', day, (v) => (filter.from = new Date(v + 'T00:00:00Z')));
  // "to" is inclusive for a person: rows created before the next day.
  take('to', day, (v) => (filter.to = new Date(Date.parse(v + 'T00:00:00Z') + 86_400_000)));
  take('messageId', () => true, (v) => (filter.messageId = v));
  take('localId', () => true, (v) => (filter.localId = v));
  take('fileName', () => true, (v) => (filter.fileName = v));
  const before = q.get('before');
  if (before) {
    if (/^\d{1,15}$/.test(before)) filter.before = Number(before);
    else ignored.push('before');
  }
  return { filter, values, ignored };
}

function select(name: string, label: string, options: string[], value: string | undefined): Html {
  return html`<p><label for="f-${name}">${label}</label>
<select id="f-${name}" name="${name}"><option value="">any</option>${options.map((o) => html`<option${o === value ? html` selected` : ''}>${o}</option>`)}</select></p>`;
}

function input(name: string, label: string, value: string | undefined, type = 'text'): Html {
  return html`<p><label for="f-${name}">${label}</label> <input type="${type}" id="f-${name}" name="${name}" value="${value ?? ''}"></p>`;
}

export function messageTable(rows: MessageRow[], caption: string, extra?: (row: MessageRow) => Html | string): Html {
  if (rows.length === 0) return html`<p class="empty">No messages match.</p>`;
  return html`<div class="scroll"><table class="messages">
<caption>${caption}</caption>
<thead><tr><th scope="col">Id</th><th scope="col">Created</th><th scope="col">Mailbox</th><th scope="col">Dir</th><th scope="col">State</th><th scope="col">Peer</th><th scope="col">Workflow</th><th scope="col">File</th><th scope="col">MESH id</th><th scope="col">Error</th>${extra ? html`<th scope="col">What to do</th>` : ''}</tr></thead>
<tbody>${rows.map(
    (r) => html`<tr>
<td><a href="/messages/${r.id}">${r.id}</a></td><td>${time(r.createdAt)}</td><td>${r.mailbox}</td><td>${r.direction}</td><td>${badge(r.state)}</td>
<td>${text(r.peer)}</td><td>${text(r.workflowId)}</td><td class="file">${text(r.fileName)}</td><td class="mid">${text(r.messageId)}</td><td>${text(r.errorCode)}</td>${extra ? html`<td>${extra(r)}</td>` : ''}
</tr>`,
  )}</tbody>
</table></div>`;
}

export function messagesPage(rows: MessageRow[], q: ReturnType<typeof parseBrowseQuery>, ctx: PageContext, hasMore: boolean): Html {
  const v = q.values;
  const params = new URLSearchParams(v);
  const last = rows[rows.length - 1];
  const older = hasMore && last ? `/messages?${new URLSearchParams({ ...v, before: String(last.id) }).toString()}` : undefined;
  const body = html`<form class="filters" method="get" action="/messages" aria-label="Filter messages">
${select('mailbox', 'Mailbox', ctx.mailboxes, v.mailbox)}
${select('direction', 'Direction', ['out', 'in'], v.direction)}
${select('state', 'State', [...ALL_STATES], v.state)}
${input('workflow', 'Workflow', v.workflow)}
${input('from', 'Created from (UTC)', v.from, 'date')}
${input('to', 'Created to (UTC)', v.to, 'date')}
${input('messageId', 'MESH id', v.messageId)}
${input('localId', 'Local id', v.localId)}
${input('fileName', 'File name contains', v.fileName)}
<p class="buttons"><button type="submit">Filter</button> <a href="/messages">Clear</a></p>
</form>
${q.ignored.length ? html`<p class="notice" role="status">Ignored invalid filter values: ${q.ignored.join(', ')}.</p>` : ''}
${messageTable(rows, `Messages, newest first${q.filter.before ? `, older than #${q.filter.before}` : ''}`)}
<nav class="paging" aria-label="Pages">
${q.filter.before ? html`<a href="/messages${params.size ? `?${params.toString()}` : ''}">Newest</a>` : ''}
${older ? html`<a href="${older}" rel="next">Older messages</a>` : ''}
</nav>`;
  return page('Messages', '/messages', body);
}

// ---------------------------------------------------------------------------------------
// One message

const FIELDS: Array<[keyof MessageRow, string]> = [
  ['id', 'Ledger id'],
  ['state', 'State'],
  ['direction', 'Direction'],
  ['mailbox', 'Mailbox'],
  ['peer', 'Peer (recipient or sender)'],
  ['workflowId', 'Workflow'],
  ['messageId', 'MESH message id'],
  ['localId', 'Local id'],
  ['subject', 'Subject'],
  ['messageType', 'Message type'],
  ['fileName', 'File name'],
  ['payloadPath', 'Payload path'],
  ['ctlPath', 'Control file path'],
  ['sizeBytes', 'Size (bytes)'],
  ['sha256', 'SHA-256'],
  ['chunkSize', 'Chunk size'],
  ['chunksTotal', 'Chunks'],
  ['chunksDone', 'Chunks done'],
  ['compress', 'Compressed'],
  ['transform', 'Transform'],
  ['attempts', 'Attempts'],
  ['nextAttemptAt', 'Next attempt'],
  ['errorCode', 'Error code'],
  ['errorText', 'Error'],
  ['linkedMessageId', 'Report about'],
  ['reportCode', 'Report code'],
  ['createdAt', 'Created'],
  ['updatedAt', 'Updated'],
  ['acknowledgedAt', 'Acknowledged'],
  ['processingStarts', 'Processing starts'],
];

function fieldValue(row: MessageRow, key: keyof MessageRow): Html | string {
  const v = row[key];
  if (key === 'state') return badge(row.state);
  if (key === 'createdAt' || key === 'updatedAt' || key === 'acknowledgedAt' || key === 'nextAttemptAt') return time(v as string | null);
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  return text(v as string | number | null);
}

function timeline(events: EventRow[]): Html {
  return html`<ol class="timeline">${events.map(
    (e) => html`<li>${time(e.at)} <strong>${e.type}</strong>${e.fromState || e.toState ? html` ${e.fromState ? badge(e.fromState) : '·'} → ${e.toState ? badge(e.toState) : '·'}` : ''}${
      e.detail ? html`<pre class="detail">${JSON.stringify(e.detail, null, 1)}</pre>` : ''
    }</li>`,
  )}</ol>`;
}

export interface MessageView {
  row: MessageRow;
  events: EventRow[];
  reports: MessageRow[];
  /** The message a REPORT is about, when it is in this ledger. */
  about?: MessageRow;
  reason?: string;
  /** Set only when ui.showPayloads is on. */
  payload?: { text: string; truncated: boolean } | { missing: string };
}

export function messagePage(v: MessageView, ctx: PageContext, notice?: string): Html {
  const { row } = v;
  const body = html`${notice ? html`<p class="notice" role="status">${notice}</p>` : ''}
<p>${badge(row.state)} ${recommendedAction(row)}</p>
${actions(row, ctx)}
<section aria-labelledby="meta"><h2 id="meta">Details</h2>
<dl class="facts">${FIELDS.map(([k, label]) => html`<dt>${label}</dt><dd>${fieldValue(row, k)}</dd>`)}</dl>
</section>
${v.reason !== undefined ? html`<section aria-labelledby="reason"><h2 id="reason">Reason file</h2><pre class="reason">${v.reason}</pre></section>` : ''}
<section aria-labelledby="reports"><h2 id="reports">Reports and acknowledgement</h2>
${v.about ? html`<p>This REPORT is about <a href="/messages/${v.about.id}">message #${v.about.id}</a>.</p>` : ''}
<p>Acknowledged: ${time(row.acknowledgedAt)}</p>
${v.reports.length ? messageTable(v.reports, 'REPORTs about this message') : html`<p>No REPORTs about this message.</p>`}
</section>
<section aria-labelledby="history"><h2 id="history">Event timeline</h2>${timeline(v.events)}</section>
${v.payload ? payloadSection(v.payload) : ''}`;
  return page(`Message ${row.id}`, '/messages', body);
}

function payloadSection(p: NonNullable<MessageView['payload']>): Html {
  return html`<section aria-labelledby="payload"><h2 id="payload">Payload preview</h2>
<p class="warning" role="note"><strong>Warning: patient data.</strong> This payload may identify patients. Do not copy it into tickets or email.</p>
${'missing' in p ? html`<p>${p.missing}</p>` : html`<pre class="payload">${p.text}</pre>${p.truncated ? html`<p>(first part only)</p>` : ''}`}
</section>`;
}

// ---------------------------------------------------------------------------------------
// Needs attention

export function attentionPage(rows: MessageRow[], ctx: PageContext, notice?: string): Html {
  const body = html`${notice ? html`<p class="notice" role="status">${notice}</p>` : ''}
<p>Messages meshd will not move on by itself: <code>needs_review</code>, <code>failed</code> and <code>quarantined</code>, newest first.${
    ctx.readOnly
      ? html` This console is read-only: act with <code>meshd ledger retry</code> and <code>meshd ledger resolve</code>.`
      : ' Every action is recorded in the message’s history as done through the console.'
  }</p>
${messageTable(rows, 'Messages needing attention', (r) => html`<p>${recommendedAction(r)}</p>${actions(r, ctx)}`)}`;
  return page('Needs attention', '/attention', body);
}
