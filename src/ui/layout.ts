import type { MessageRow, MessageState } from '../ledger';
import { html, type Html } from './html';

/** The page shell and the small pieces every page uses: state badges, times, the operator forms. */

export interface PageContext {
  csrf: string;
  readOnly: boolean;
  showPayloads: boolean;
  mailboxes: string[];
}

const NAV: Array<[string, string]> = [
  ['/', 'Overview'],
  ['/messages', 'Messages'],
  ['/attention', 'Needs attention'],
];

/** The document start, up to <body>; pages without a session get no script. */
function head(title: string, script: boolean): Html {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · meshd</title>
<link rel="stylesheet" href="/static/console.css">
${script ? html`<script src="/static/console.js" defer></script>` : ''}
</head>`;
}

export function page(title: string, current: string, body: Html, opts: { refresh?: boolean } = {}): Html {
  return html`${head(title, true)}
<body${opts.refresh ? html` data-refresh="30"` : ''}>
<a class="skip" href="#main">Skip to content</a>
<header class="top">
<p class="brand">meshd console</p>
<nav aria-label="Main">
<ul>${NAV.map(([href, label]) => html`<li><a href="${href}"${href === current ? html` aria-current="page"` : ''}>${label}</a></li>`)}</ul>
</nav>
</header>
<main id="main">
<h1>${title}</h1>
${body}
</main>
</body>
</html>
`;
}

/** A page with no session-dependent content: 401, 403, 404, 429. */
export function plainPage(title: string, message: string, link?: [string, string]): Html {
  return html`${head(title, false)}
<body>
<main id="main">
<h1>${title}</h1>
<p>${message}</p>
${link ? html`<p><a href="${link[0]}">${link[1]}</a></p>` : ''}
</main>
</body>
</html>
`;
}

export function badge(state: MessageState): Html {
  return html`<span class="badge state-${state}">${state.replace('_', ' ')}</span>`;
}

/** An ISO instant as `2026-11-24 10:00:00Z` in a <time> element; a dash when absent. */
export function time(iso: string | null | undefined): Html {
  if (!iso) return html`<span class="none">never</span>`;
  return html`<time datetime="${iso}">${iso.replace('T', ' ').replace(/\.\d{3}Z$/, 'Z')}</time>`;
}

export function text(value: string | number | null | undefined): Html | string {
  return value === null || value === undefined || value === '' ? html`<span class="none">–</span>` : String(value);
}

/** What the docs (docs/ledger.md) tell a sysadmin to do with a row in this state. */
export function recommendedAction(row: MessageRow): string {
  if (row.errorCode === 'POISON') return 'Its conversion killed meshd twice. Keep the payload in failed/ for the developers; do not retry it as it is.';
  switch (row.state) {
    case 'needs_review':
      return 'meshd cannot tell whether MESH received it. Check the MESH UI or ask the service desk or the recipient; then resolve as sent if it arrived, or as failed if not (and retry to send it again).';
    case 'failed':
      return 'Read the error, fix the cause (recipient, workflow, input file), then retry; or leave it for retention.';
    case 'undeliverable':
      return 'MESH will not deliver it. Fix the recipient or workflow, then retry if the data still needs to go.';
    case 'quarantined':
      return 'Read the reason, fix the cause (route, transform, size cap), then retry; or pass the raw file in failed/ on by hand.';
    default:
      return 'Nothing to do: meshd moves it on by itself.';
  }
}

export function canRetry(row: MessageRow): boolean {
  return row.direction === 'out' ? row.state === 'failed' || row.state === 'undeliverable' : row.state === 'quarantined';
}

/** Retry and resolve forms for a row, or nothing when the console is read-only or the row has no action. */
export function actions(row: MessageRow, ctx: PageContext): Html | string {
  if (ctx.readOnly) return '';
  const csrf = html`<input type="hidden" name="csrf" value="${ctx.csrf}">`;
  if (row.state === 'needs_review') {
    return html`<form class="action" method="post" action="/messages/${row.id}/resolve">
${csrf}
<fieldset>
<legend>Resolve message ${row.id}</legend>
<p class="choices">
<input type="radio" id="as-sent-${row.id}" name="as" value="sent" required> <label for="as-sent-${row.id}">It arrived (sent)</label>
<input type="radio" id="as-failed-${row.id}" name="as" value="failed"> <label for="as-failed-${row.id}">It did not arrive (failed)</label>
</p>
<p><label for="note-${row.id}">What was checked (required)</label>
<input type="text" id="note-${row.id}" name="note" required maxlength="500"></p>
<p><label for="mid-${row.id}">MESH message id, if known</label>
<input type="text" id="mid-${row.id}" name="messageId" maxlength="100"></p>
<p><button type="submit">Resolve</button></p>
</fieldset>
</form>`;
  }
  if (canRetry(row)) {
    return html`<form class="action" method="post" action="/messages/${row.id}/retry">
${csrf}
<p><label for="note-${row.id}">Note (optional)</label>
<input type="text" id="note-${row.id}" name="note" maxlength="500">
<button type="submit">Retry message ${row.id}</button></p>
</form>`;
  }
  return '';
}
