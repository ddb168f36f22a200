import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { validateConfig } from '../../src/config/validate';
import { openLedger, type SqliteLedger } from '../../src/ledger';
import { Sessions, cookieValue } from '../../src/ui/auth';
import { escapeHtml, html } from '../../src/ui/html';
import { parseBrowseQuery } from '../../src/ui/pages';

/** The console's queries on a real SQLite ledger, its config section, its escaping and its sessions. */

describe('web console: ledger queries, config, escaping, sessions', () => {
  let dir: string;
  let ledger: SqliteLedger;
  let clock: Date;
  const ids: number[] = [];

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'meshd-ui-queries-'));
    clock = new Date('2026-11-01T09:00:00.000Z');
    ledger = openLedger(join(dir, 'meshd.db'), { now: () => clock });
    // Ten rows a day apart: even ones outbound, every third on another workflow.
    for (let i = 0; i < 10; i++) {
      clock = new Date(Date.parse('2026-11-01T09:00:00.000Z') + i * 86_400_000);
      const row = ledger.insertMessage({
        direction: i % 2 === 0 ? 'out' : 'in',
        mailbox: i < 8 ? 'X26ABC1' : 'X26ABC9',
        state: i % 2 === 0 ? 'queued' : 'receiving',
        workflowId: i % 3 === 0 ? 'WF_A' : 'WF_B',
        localId: `local-${i}`,
        messageId: `MID${i}`,
        fileName: `batch-${i}.csv`,
      });
      ids.push(row.id);
    }
    ledger.transition(ids[0], 'sent');
    ledger.transition(ids[2], 'failed');
    ledger.transition(ids[1], 'delivered');
    ledger.transition(ids[3], 'quarantined');
    ledger.insertMessage({ direction: 'in', mailbox: 'X26ABC1', state: 'delivered', messageType: 'REPORT', linkedMessageId: 'MID0', messageId: 'REP1' });
  });

  after(() => {
    ledger.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const idsOf = (rows: Array<{ id: number }>) => rows.map((r) => r.id);

  it('browse filters on every field the messages page offers, newest first', () => {
    expect(idsOf(ledger.browse({ limit: 3 }))).to.deep.equal([ids[9] + 1, ids[9], ids[8]]);
    expect(idsOf(ledger.browse({ state: 'failed', limit: 50 }))).to.deep.equal([ids[2]]);
    expect(idsOf(ledger.browse({ state: ['failed', 'quarantined'], limit: 50 }))).to.deep.equal([ids[3], ids[2]]);
    expect(idsOf(ledger.browse({ mailbox: 'X26ABC9', limit: 50 }))).to.deep.equal([ids[9], ids[8]]);
    expect(idsOf(ledger.browse({ direction: 'out', workflow: 'WF_A', limit: 50 }))).to.deep.equal([ids[6], ids[0]]);
    expect(idsOf(ledger.browse({ messageId: 'MID4', limit: 50 }))).to.deep.equal([ids[4]]);
    expect(idsOf(ledger.browse({ localId: 'local-5', limit: 50 }))).to.deep.equal([ids[5]]);
    expect(idsOf(ledger.browse({ fileName: 'ch-7', limit: 50 }))).to.deep.equal([ids[7]]);
    const from = new Date('2026-11-03T00:00:00Z');
    const to = new Date('2026-11-06T00:00:00Z');
    expect(idsOf(ledger.browse({ from, to, limit: 50 }))).to.deep.equal([ids[4], ids[3], ids[2]]);
  });

  it('pages by keyset: the next page starts after the last row shown, with and without a date range', () => {
    const first = ledger.browse({ limit: 4 });
    const second = ledger.browse({ limit: 4, before: first.at(-1)!.id });
    expect(idsOf(second)).to.deep.equal([ids[6], ids[5], ids[4], ids[3]]);
    const from = new Date('2026-11-01T00:00:00Z');
    const timed = ledger.browse({ from, limit: 4 });
    // The REPORT shares ids[9]'s created_at: the id breaks the tie.
    expect(idsOf(timed)).to.deep.equal([ids[9] + 1, ids[9], ids[8], ids[7]]);
    expect(idsOf(ledger.browse({ from, limit: 4, before: timed.at(-1)!.id }))).to.deep.equal([ids[6], ids[5], ids[4], ids[3]]);
  });

  it('finds the REPORTs about a message and counts sent, received and failed per period', () => {
    expect(ledger.linkedReports('MID0').map((r) => r.messageId)).to.deep.equal(['REP1']);
    expect(ledger.linkedReports('MID1')).to.deep.equal([]);
    const daily = ledger.throughput(new Date('2026-11-01T00:00:00Z'), 'day');
    // Every move happened at the clock's last value (2026-11-10): 1 sent, 2 delivered (one a REPORT), 2 failed/quarantined.
    expect(daily).to.deep.include({ period: '2026-11-10', sent: 1, received: 2, failed: 2 });
    expect(ledger.throughput(new Date('2026-11-10T09:00:00Z'), 'hour')).to.deep.equal([{ period: '2026-11-10T09', sent: 1, received: 2, failed: 2 }]);
  });

  it('parses the messages page query, dropping and naming what is invalid', () => {
    const q = parseBrowseQuery(new URLSearchParams('mailbox=X26ABC1&state=bogus&from=2026-11-02&to=2026-11-02&before=12&direction=sideways&fileName=a'), ['X26ABC1']);
    expect(q.filter).to.deep.include({ mailbox: 'X26ABC1', before: 12, fileName: 'a' });
    expect(q.filter.from!.toISOString()).to.equal('2026-11-02T00:00:00.000Z');
    expect(q.filter.to!.toISOString()).to.equal('2026-11-03T00:00:00.000Z');
    expect(q.ignored).to.deep.equal(['direction', 'state']);
    expect(parseBrowseQuery(new URLSearchParams('mailbox=OTHER'), ['X26ABC1']).ignored).to.deep.equal(['mailbox']);
  });

  it('escapes every interpolated value; only nested templates pass through', () => {
    expect(escapeHtml(`<img src=x onerror="alert('1')">&`)).to.equal('&lt;img src=x onerror=&quot;alert(&#39;1&#39;)&quot;&gt;&amp;');
    const name = '</script><b>';
    expect(String(html`<td title="${name}">${name}${html`<i>${name}</i>`}${[name, null, undefined, false]}</td>`)).to.equal(
      '<td title="&lt;/script&gt;&lt;b&gt;">&lt;/script&gt;&lt;b&gt;<i>&lt;/script&gt;&lt;b&gt;</i>&lt;/script&gt;&lt;b&gt;</td>',
    );
  });

  it('sessions: the token logs in, others do not; failed logins block an address after five', () => {
    let t = 0;
    const s = new Sessions('T'.repeat(43), () => t);
    expect(s.login('wrong')).to.equal(undefined);
    const session = s.login('T'.repeat(43))!;
    expect(session.id).to.match(/^[A-Za-z0-9_-]{43}$/);
    expect(session.csrf).not.to.equal(session.id);
    expect(s.find(cookieValue(`a=b; meshd_session=${session.id}`, 'meshd_session'))).to.equal(session);
    for (let i = 0; i < 5; i++) s.failed('10.0.0.1');
    expect(s.blocked('10.0.0.1')).to.equal(true);
    expect(s.blocked('10.0.0.2')).to.equal(false);
    t += 61_000;
    expect(s.blocked('10.0.0.1')).to.equal(false);
    t += 13 * 3_600_000;
    expect(s.find(session.id)).to.equal(undefined);
  });

  it('the ui config section: defaults, and a non-loopback host needs ui.tls', () => {
    const base = { environment: 'local', url: 'http://127.0.0.1:1', sharedKey: 'TestOnlySharedKey', mailboxes: [{ id: 'X26ABC1', password: 'TestOnlyPassword' }] };
    const where = { configPath: join(dir, 'c.yaml'), configDir: dir };
    expect(validateConfig(base, where).config.ui).to.equal(undefined);
    const plain = validateConfig({ ...base, ui: {} }, where);
    expect(plain.problems.list).to.deep.equal([]);
    expect(plain.config.ui).to.deep.equal({ port: 9465, host: '127.0.0.1', readOnly: false, showPayloads: false });
    const open = validateConfig({ ...base, ui: { host: '0.0.0.0', readOnly: 'yes' } }, where);
    expect(open.problems.list.map((p) => p.key)).to.deep.equal(['ui.readOnly', 'ui.host']);
    expect(open.problems.list[1].message).to.include('ui.tls');
  });
});
