import { PassThrough } from 'node:stream';
import { expect } from 'chai';
import { MeshdError } from '../../src/errors';
import { INITIAL_STATES, MessageState, TRANSITIONS, statesFor, type Direction, type LedgerStore, type MessageRow, type NewMessage } from '../../src/ledger';
import { exportRows } from '../../src/ledger/export';
import { LEDGER_BACKENDS, type LedgerFixture } from './support/ledger-backends';

/**
 * The LedgerStore contract: every test runs unchanged against each backend (SQLite in a temp
 * dir, PostgreSQL in the throwaway test cluster). A behaviour one backend has and the other
 * lacks fails here.
 */

const T0 = new Date('2026-11-01T09:00:00.000Z');
const MB = 'X26ABC1';

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    if (err instanceof MeshdError) return err.code;
    throw err;
  }
  return undefined;
}

for (const backend of LEDGER_BACKENDS) {
  describe(`ledger contract: ${backend.name}`, () => {
    let fixture: LedgerFixture;
    let ledger: LedgerStore;
    let clock: Date;
    const opened: LedgerStore[] = [];
    const open = (): LedgerStore => {
      const store = fixture.open(() => clock);
      opened.push(store);
      return store;
    };

    beforeEach(async () => {
      clock = T0;
      fixture = await backend.fresh();
      ledger = open();
    });
    afterEach(() => {
      for (const store of opened.splice(0)) store.close();
      fixture.cleanup();
    });

    const queued = (extra: Partial<NewMessage> = {}): MessageRow =>
      ledger.insertMessage({ direction: 'out', mailbox: MB, state: 'queued', peer: 'X26ABC2', workflowId: 'TEST_WORKFLOW', ...extra });
    const tick = (ms: number) => (clock = new Date(clock.getTime() + ms));

    describe('rows', () => {
      it('stores every field and reads it back in the same shape', () => {
        const row = queued({
          messageId: '20261101090000000000_ABC123',
          localId: 'L1',
          subject: 'registrations',
          fileName: 'reg.csv',
          payloadPath: '/spool/1.dat',
          ctlPath: '/spool/1.ctl',
          sizeBytes: 5_000_000_000,
          sha256: 'ab'.repeat(32),
          chunkSize: 20 * 1024 * 1024,
          chunksTotal: 1,
          compress: true,
          transform: 'csv>fhir-r4',
          nextAttemptAt: new Date('2026-11-01T10:00:00Z'),
          errorCode: 'E1',
          errorText: 'text',
          sourceMtimeMs: 1761987600123.5,
        });
        expect(ledger.get(row.id)).to.deep.equal(row);
        expect(row).to.include({
          direction: 'out',
          mailbox: MB,
          state: 'queued',
          messageType: 'DATA',
          compress: true,
          chunksDone: 0,
          attempts: 0,
          processingStarts: 0,
          sizeBytes: 5_000_000_000,
          sourceMtimeMs: 1761987600123.5,
          nextAttemptAt: '2026-11-01T10:00:00.000Z',
          createdAt: T0.toISOString(),
          updatedAt: T0.toISOString(),
          acknowledgedAt: null,
          recoveryMark: null,
        });
        expect(row.claimId).to.match(/^[0-9a-f]{32}$/);
        expect(ledger.findByClaimId(row.claimId!)!.id).to.equal(row.id);
        const plain = queued({ compress: false });
        expect(plain).to.include({ compress: false, sizeBytes: null, nextAttemptAt: null });
      });

      it('records a creation event (default or named) with the initial state', () => {
        const row = queued();
        const named = queued({}, );
        ledger.recordEvent(named.id, 'note', { text: 'hello', n: 2 });
        expect(ledger.events(row.id)).to.deep.equal([{ id: ledger.events(row.id)[0].id, messageRowId: row.id, at: T0.toISOString(), type: 'created', fromState: null, toState: 'queued', detail: null }]);
        const other = ledger.insertMessage({ direction: 'in', mailbox: MB, state: 'receiving' }, { type: 'listed', detail: { page: 1 } });
        expect(ledger.events(other.id)[0]).to.include({ type: 'listed', toState: 'receiving' });
        expect(ledger.events(other.id)[0].detail).to.deep.equal({ page: 1 });
        expect(ledger.events(named.id).at(-1)!.detail).to.deep.equal({ text: 'hello', n: 2 });
      });

      it('updates fields without a state change, refusing state, identity and stamps', () => {
        const row = queued();
        tick(1000);
        const updated = ledger.update(row.id, { chunksDone: 2, chunksTotal: 5 }, { type: 'chunk_sent', detail: { chunk: 2 } });
        expect(updated).to.include({ chunksDone: 2, chunksTotal: 5, state: 'queued', updatedAt: clock.toISOString(), createdAt: T0.toISOString() });
        expect(ledger.events(row.id).at(-1)).to.include({ type: 'chunk_sent', fromState: null, toState: null });
        for (const field of ['state', 'id', 'direction', 'mailbox', 'createdAt', 'recoveryMark', 'bogus']) {
          expect(code(() => ledger.update(row.id, { [field]: 'x' } as never)), field).to.equal('LEDGER_BAD_FIELD');
        }
        expect(code(() => ledger.update(99_999, { attempts: 1 }))).to.equal('LEDGER_NOT_FOUND');
        expect(code(() => ledger.recordEvent(99_999, 'note'))).to.equal('LEDGER_NOT_FOUND');
      });

      it('keeps one row per MESH message id per mailbox and direction', () => {
        queued({ messageId: 'M1' });
        expect(code(() => queued({ messageId: 'M1' }))).to.equal('LEDGER_DUPLICATE');
        const other = queued();
        expect(code(() => ledger.update(other.id, { messageId: 'M1' }))).to.equal('LEDGER_DUPLICATE');
        ledger.insertMessage({ direction: 'in', mailbox: MB, state: 'receiving', messageId: 'M1' });
        ledger.insertMessage({ direction: 'out', mailbox: 'X26ABC9', state: 'queued', messageId: 'M1' });
        queued();
        expect(ledger.list({})).to.have.length(5);
      });

      it('finds rows by MESH id, row id and either (findByRef), and REPORTs by the message they are about', () => {
        const a = queued({ messageId: 'MSG_A' });
        expect(ledger.findByMessageId(MB, 'out', 'MSG_A')!.id).to.equal(a.id);
        expect(ledger.findByMessageId(MB, 'in', 'MSG_A')).to.equal(undefined);
        expect(ledger.findByRef(` ${a.id} `)!.id).to.equal(a.id);
        expect(ledger.findByRef('MSG_A')!.id).to.equal(a.id);
        expect(ledger.findByRef('nope')).to.equal(undefined);
        expect(ledger.findByRef('424242')).to.equal(undefined);
        const report = ledger.insertMessage({ direction: 'in', mailbox: MB, state: 'delivered', messageType: 'REPORT', messageId: 'R1', linkedMessageId: 'MSG_A', reportCode: '14' });
        ledger.insertMessage({ direction: 'in', mailbox: MB, state: 'delivered', linkedMessageId: 'MSG_A' });
        expect(ledger.linkedReports('MSG_A').map((r) => r.id)).to.deep.equal([report.id]);
      });

      it('refuses a new row in a state that is not a start state, or with a mark that state cannot carry', () => {
        expect(code(() => ledger.insertMessage({ direction: 'out', mailbox: MB, state: 'sent' }))).to.equal('LEDGER_INVALID_STATE');
        expect(code(() => ledger.insertMessage({ direction: 'in', mailbox: MB, state: 'queued' }))).to.equal('LEDGER_INVALID_STATE');
        expect(code(() => ledger.insertMessage({ direction: 'out', mailbox: MB, state: 'claiming', recoveryMark: 'filing' }))).to.equal('LEDGER_CONFLICT');
        expect(queued({ recoveryMark: 'post_in_flight' } as Partial<NewMessage>).recoveryMark).to.equal('post_in_flight');
      });

      it('never reuses a row id, even after the newest rows are purged', () => {
        const a = queued();
        const b = queued();
        ledger.transition(b.id, 'failed');
        const purged = ledger.purge({ olderThan: new Date(T0.getTime() + 1), payloadsOnly: false, now: T0 });
        expect(purged.rows).to.equal(1);
        ledger.close();
        ledger = open();
        const c = queued();
        expect(c.id).to.be.greaterThan(b.id).and.greaterThan(a.id);
      });
    });

    describe('states', () => {
      it('performs every legal transition, recording each as an event', () => {
        for (const direction of ['out', 'in'] as Direction[]) {
          for (const [from, tos] of Object.entries(TRANSITIONS[direction])) {
            for (const to of tos ?? []) {
              // Reach `from`: a start state directly, else through the first path found.
              const row = reach(ledger, direction, from as MessageState);
              tick(1);
              const moved = ledger.transition(row.id, to, { from: [from as MessageState], event: { type: 'test', detail: { to } } });
              expect(moved.state, `${direction} ${from}→${to}`).to.equal(to);
              expect(ledger.events(row.id).at(-1)).to.deep.include({ type: 'test', fromState: from, toState: to, at: clock.toISOString(), detail: { to } });
            }
          }
        }
      });

      it('refuses every illegal transition with LEDGER_CONFLICT and leaves the row unchanged', () => {
        for (const direction of ['out', 'in'] as Direction[]) {
          for (const from of statesFor(direction)) {
            const row = reach(ledger, direction, from);
            for (const to of Object.values(MessageState)) {
              if (TRANSITIONS[direction][from]?.includes(to)) continue;
              expect(code(() => ledger.transition(row.id, to)), `${direction} ${from}→${to}`).to.equal('LEDGER_CONFLICT');
            }
            expect(ledger.get(row.id)!.state).to.equal(from);
          }
        }
      });

      it('refuses a legal move when the row is not in the expected state, and an unknown row', () => {
        const row = queued();
        expect(code(() => ledger.transition(row.id, 'failed', { from: ['uploading'] }))).to.equal('LEDGER_CONFLICT');
        expect(ledger.get(row.id)!.state).to.equal('queued');
        expect(code(() => ledger.transition(99_999, 'failed'))).to.equal('LEDGER_NOT_FOUND');
      });

      it('stamps acknowledged_at on acknowledgement and applies the patch with the move', () => {
        const row = queued();
        ledger.transition(row.id, 'sent', { patch: { messageId: 'M9', chunksDone: 1 } });
        tick(5000);
        const acked = ledger.transition(row.id, 'acknowledged');
        expect(acked).to.include({ state: 'acknowledged', acknowledgedAt: clock.toISOString(), messageId: 'M9', chunksDone: 1 });
      });

      it('keeps recovery marks to the states that allow them: set with a move, cleared by the next, changed by setMark', () => {
        const row = queued();
        const marked = ledger.setMark(row.id, 'post_in_flight', { from: ['queued'], patch: { attempts: 1 }, event: { type: 'post_started' } });
        expect(marked).to.include({ recoveryMark: 'post_in_flight', attempts: 1 });
        expect(ledger.events(row.id).at(-1)).to.deep.include({ type: 'post_started', detail: { mark: 'post_in_flight' } });
        expect(code(() => ledger.setMark(row.id, 'filing'))).to.equal('LEDGER_CONFLICT');
        expect(code(() => ledger.setMark(row.id, null, { from: ['sent'] }))).to.equal('LEDGER_CONFLICT');
        const sent = ledger.transition(row.id, 'sent', { mark: 'filing' });
        expect(sent.recoveryMark).to.equal('filing');
        expect(ledger.setMark(row.id, null).recoveryMark).to.equal(null);
        expect(code(() => ledger.transition(row.id, 'acknowledged', { mark: 'filing' }))).to.equal('LEDGER_CONFLICT');
        expect(ledger.transition(row.id, 'acknowledged').recoveryMark).to.equal(null);
        expect(code(() => ledger.setMark(99_999, null))).to.equal('LEDGER_NOT_FOUND');
      });
    });

    describe('claims and work queues', () => {
      it('returns due rows in due order: no next attempt first, then by time, then id', () => {
        const now = new Date('2026-11-01T12:00:00Z');
        const later = queued({ nextAttemptAt: new Date('2026-11-01T13:00:00Z') });
        const exact = queued({ nextAttemptAt: now });
        const earlier = queued({ nextAttemptAt: new Date('2026-11-01T11:00:00Z') });
        const immediate = queued();
        ledger.insertMessage({ direction: 'out', mailbox: 'X26ABC9', state: 'queued' });
        const failed = queued();
        ledger.transition(failed.id, 'failed');
        expect(ledger.due(MB, 'out', ['queued'], now, 10).map((r) => r.id)).to.deep.equal([immediate.id, earlier.id, exact.id]);
        expect(ledger.due(MB, 'out', ['queued', 'failed'], now, 10)).to.have.length(4);
        expect(ledger.due(MB, 'out', ['queued'], now, 2)).to.have.length(2);
        expect(later.state).to.equal('queued');
      });

      it('never lets two stores on the same database move the same row', () => {
        const other = open();
        const row = queued();
        ledger.transition(row.id, 'uploading', { from: ['queued'] });
        expect(code(() => other.transition(row.id, 'uploading', { from: ['queued'] }))).to.equal('LEDGER_CONFLICT');
        expect(ledger.events(row.id).filter((e) => e.toState === 'uploading')).to.have.length(1);
      });

      it('counts by state and finds the oldest waiting row', () => {
        const a = queued();
        tick(60_000);
        queued();
        const f = queued();
        ledger.transition(f.id, 'failed');
        ledger.insertMessage({ direction: 'in', mailbox: MB, state: 'delivered' });
        ledger.insertMessage({ direction: 'out', mailbox: 'X26ABC9', state: 'queued' });
        expect(ledger.countsByState()).to.deep.equal({ queued: 3, failed: 1, delivered: 1 });
        expect(ledger.countsByState(MB)).to.deep.equal({ queued: 2, failed: 1, delivered: 1 });
        expect(ledger.countsByState(MB, 'in')).to.deep.equal({ delivered: 1 });
        expect(ledger.oldest(MB, 'out', ['queued'])!.id).to.equal(a.id);
        expect(ledger.oldest(MB, 'out', ['sent'])).to.equal(undefined);
      });
    });

    describe('queries', () => {
      it('lists with filters newest first, and iterates oldest first without a limit', () => {
        const a = queued({ workflowId: 'W1' });
        clock = new Date('2026-11-02T00:00:00Z');
        const b = queued({ workflowId: 'W2' });
        const c = ledger.insertMessage({ direction: 'in', mailbox: 'X26ABC2', state: 'receiving', workflowId: 'W1' });
        expect(ledger.list({}).map((r) => r.id)).to.deep.equal([c.id, b.id, a.id]);
        expect(ledger.list({ direction: 'out' }).map((r) => r.id)).to.deep.equal([b.id, a.id]);
        expect(ledger.list({ mailbox: 'X26ABC2' }).map((r) => r.id)).to.deep.equal([c.id]);
        expect(ledger.list({ workflow: 'W1' }).map((r) => r.id)).to.deep.equal([c.id, a.id]);
        expect(ledger.list({ state: 'receiving' }).map((r) => r.id)).to.deep.equal([c.id]);
        expect(ledger.list({ since: new Date('2026-11-01T12:00:00Z') }).map((r) => r.id)).to.deep.equal([c.id, b.id]);
        expect(ledger.list({ limit: 1 }).map((r) => r.id)).to.deep.equal([c.id]);
        expect([...ledger.iterate({ direction: 'out' })].map((r) => r.id)).to.deep.equal([a.id, b.id]);
        // Two iterations of one filter at once (two mailboxes' recoveries, say): neither is refused or cut short.
        const pairs: number[][] = [];
        for (const x of ledger.iterate({ direction: 'out' })) for (const y of ledger.iterate({ direction: 'out' })) pairs.push([x.id, y.id]);
        expect(pairs).to.deep.equal([[a.id, a.id], [a.id, b.id], [b.id, a.id], [b.id, b.id]]);
      });

      it('iterates only the rows not yet acknowledged to MESH when asked', () => {
        const acked = ledger.insertMessage({ direction: 'in', mailbox: MB, state: 'quarantined', messageId: 'M1' });
        const open = ledger.insertMessage({ direction: 'in', mailbox: MB, state: 'quarantined', messageId: 'M2' });
        ledger.update(acked.id, { acknowledgedAt: clock });
        expect([...ledger.iterate({ mailbox: MB, state: 'quarantined', unacknowledged: true })].map((r) => r.id)).to.deep.equal([open.id]);
        expect([...ledger.iterate({ mailbox: MB, state: 'quarantined' })].map((r) => r.id)).to.deep.equal([acked.id, open.id]);
      });

      it('iterates by recovery mark and by payload directory, the directory taken literally', () => {
        const marked = queued({ payloadPath: '/srv/spool_1/a.dat' });
        ledger.setMark(marked.id, 'post_in_flight');
        const moved = queued({ payloadPath: '/srv/spool_1-old/b.dat' });
        queued({ payloadPath: '/srv/spoolX1/c.dat' });
        const ids = (f: Parameters<LedgerStore['iterate']>[0]) => [...ledger.iterate(f)].map((r) => r.id);
        expect(ids({ mailbox: MB, recoveryMark: 'post_in_flight' })).to.deep.equal([marked.id]);
        expect(ids({ mailbox: MB, recoveryMark: 'filing' })).to.deep.equal([]);
        expect(ids({ mailbox: MB, payloadUnder: '/srv/spool_1/' })).to.deep.equal([marked.id]);
        // `_` is a LIKE wildcard: a prefix match by LIKE would take c.dat too.
        expect(ids({ mailbox: MB, payloadUnder: '/srv/spool_' })).to.deep.equal([marked.id, moved.id]);
      });

      it('iterates past one page of rows', () => {
        ledger.transaction(() => {
          for (let i = 0; i < 1203; i++) queued();
        });
        const ids = [...ledger.iterate({ mailbox: MB })].map((r) => r.id);
        expect(ids).to.have.length(1203);
        expect(ids).to.deep.equal([...ids].sort((x, y) => x - y));
      });

      it('browses with exact filters, file-name search and keyset pages, by id or by time', () => {
        const rows: MessageRow[] = [];
        for (let i = 0; i < 6; i++) {
          clock = new Date(T0.getTime() + (i % 2 === 0 ? i : 10 - i) * 3_600_000);
          rows.push(queued({ fileName: `file-${i}.csv`, localId: `L${i}`, workflowId: i < 3 ? 'W1' : 'W2' }));
        }
        ledger.transition(rows[1].id, 'failed');
        const ids = (f: Parameters<LedgerStore['browse']>[0]) => ledger.browse(f).map((r) => r.id);
        const all = rows.map((r) => r.id).reverse();
        expect(ids({ limit: 3 })).to.deep.equal(all.slice(0, 3));
        expect(ids({ limit: 3, before: all[2] })).to.deep.equal(all.slice(3));
        expect(ids({ limit: 10, state: 'failed' })).to.deep.equal([rows[1].id]);
        expect(ids({ limit: 10, state: ['failed', 'queued'], workflow: 'W1' })).to.deep.equal([rows[2].id, rows[1].id, rows[0].id]);
        expect(ids({ limit: 10, fileName: 'e-4' })).to.deep.equal([rows[4].id]);
        expect(ids({ limit: 10, localId: 'L3', mailbox: MB, direction: 'out' })).to.deep.equal([rows[3].id]);
        expect(ids({ limit: 10, mailbox: 'X26ABC9' })).to.deep.equal([]);
        // By time: created at hours 0, 9, 2, 7, 4, 5 → newest first 9, 7, 5, 4, 2, 0.
        const byTime = [1, 3, 5, 4, 2, 0].map((i) => rows[i].id);
        const from = T0;
        expect(ids({ limit: 2, from })).to.deep.equal(byTime.slice(0, 2));
        expect(ids({ limit: 3, from, before: byTime[1] })).to.deep.equal(byTime.slice(2, 5));
        expect(ids({ limit: 10, from: new Date(T0.getTime() + 3 * 3_600_000), to: new Date(T0.getTime() + 8 * 3_600_000) })).to.deep.equal([rows[3].id, rows[5].id, rows[4].id]);
      });

      it('counts moves into sent, delivered and failed per hour and per day', () => {
        const a = queued();
        clock = new Date('2026-11-01T10:15:00Z');
        ledger.transition(a.id, 'sent');
        const b = ledger.insertMessage({ direction: 'in', mailbox: MB, state: 'receiving' });
        ledger.transition(b.id, 'delivered');
        clock = new Date('2026-11-02T08:00:00Z');
        const c = queued();
        ledger.transition(c.id, 'failed');
        expect(ledger.throughput(T0, 'hour')).to.deep.equal([
          { period: '2026-11-01T10', sent: 1, received: 1, failed: 0 },
          { period: '2026-11-02T08', sent: 0, received: 0, failed: 1 },
        ]);
        expect(ledger.throughput(new Date('2026-11-02T00:00:00Z'), 'day')).to.deep.equal([{ period: '2026-11-02', sent: 0, received: 0, failed: 1 }]);
      });

      it('exports every row as CSV and JSON', async () => {
        queued({ fileName: 'a, "quoted".csv' });
        queued();
        const text = async (format: 'csv' | 'json') => {
          const out = new PassThrough();
          const chunks: Buffer[] = [];
          out.on('data', (d: Buffer) => chunks.push(d));
          const n = await exportRows(ledger.iterate({}), format, out);
          out.end();
          return { n, text: Buffer.concat(chunks).toString('utf8') };
        };
        const csv = await text('csv');
        expect(csv.n).to.equal(2);
        expect(csv.text.split('\r\n')).to.have.length(4);
        expect(csv.text).to.include('"a, ""quoted"".csv"');
        const json = await text('json');
        expect((JSON.parse(json.text) as MessageRow[]).map((r) => r.id)).to.deep.equal([...ledger.iterate({})].map((r) => r.id));
      });
    });

    describe('events', () => {
      it('are append-only: the database itself refuses UPDATE and DELETE', () => {
        const row = queued();
        ledger.recordEvent(row.id, 'note', { text: 'hello' });
        expect(() => fixture.raw("UPDATE events SET type = 'forged'")).to.throw(/append-only/);
        expect(() => fixture.raw('DELETE FROM events')).to.throw(/append-only/);
        expect(ledger.events(row.id).map((e) => e.type)).to.deep.equal(['created', 'note']);
      });
    });

    describe('transactions', () => {
      it('groups writes in one commit and rolls all of them back on error', () => {
        expect(() =>
          ledger.transaction(() => {
            queued();
            queued();
            throw new Error('boom');
          }),
        ).to.throw('boom');
        expect(ledger.list({})).to.have.length(0);
        const ids = ledger.transaction(() => [queued().id, queued().id]);
        expect(ledger.list({}).map((r) => r.id).sort((a, b) => a - b)).to.deep.equal(ids);
      });

      it('rolls a nested transaction back alone when the outer one catches its error', () => {
        const kept = ledger.transaction(() => {
          const a = queued();
          expect(() =>
            ledger.transaction(() => {
              queued();
              throw new Error('inner');
            }),
          ).to.throw('inner');
          return a.id;
        });
        expect(ledger.list({}).map((r) => r.id)).to.deep.equal([kept]);
      });

      it('keeps a failed state change whole: no event without the move, no move without the event', () => {
        const row = queued();
        expect(() =>
          ledger.transaction(() => {
            ledger.transition(row.id, 'uploading');
            ledger.update(row.id, { messageId: 'M1' });
            queued({ messageId: 'M1' });
          }),
        ).to.throw(MeshdError);
        expect(ledger.get(row.id)).to.include({ state: 'queued', messageId: null });
        expect(ledger.events(row.id).map((e) => e.type)).to.deep.equal(['created']);
      });
    });

    describe('business semantics (migration 6)', () => {
      const received = (extra: Partial<NewMessage>) =>
        ledger.insertMessage({ direction: 'in', mailbox: MB, state: 'delivered', peer: 'X26ABC2', workflowId: 'WF', messageId: `M${Math.random().toString(16).slice(2)}`, ...extra });

      it('finds an earlier copy by business id (else by received hash) within the window, from the same sender and workflow', () => {
        const first = received({ businessId: 'B1', receivedSha256: 'a'.repeat(64), eventTime: new Date('2026-06-21T08:30:00Z') });
        expect(first).to.include({ businessId: 'B1', receivedSha256: 'a'.repeat(64), eventTime: '2026-06-21T08:30:00.000Z', relatedRowId: null, ackDueAt: null });
        const noId = received({ receivedSha256: 'c'.repeat(64) });
        const q = { mailbox: MB, peer: 'X26ABC2', workflowId: 'WF', since: new Date(T0.getTime() - 1000), excludeId: -1, states: ['delivered', 'acknowledged'] as MessageState[] };
        expect(ledger.findEarlierCopy({ ...q, businessId: 'B1', receivedSha256: 'b'.repeat(64) })?.id, 'same id, other content: found, for the caller to call a conflict').to.equal(first.id);
        expect(ledger.findEarlierCopy({ ...q, businessId: null, receivedSha256: 'c'.repeat(64) })?.id).to.equal(noId.id);
        expect(ledger.findEarlierCopy({ ...q, businessId: null, receivedSha256: 'a'.repeat(64) }), 'a hash match needs both without an id').to.equal(undefined);
        expect(ledger.findEarlierCopy({ ...q, businessId: 'B1', receivedSha256: 'a'.repeat(64), peer: 'X26ABC9' })).to.equal(undefined);
        expect(ledger.findEarlierCopy({ ...q, businessId: 'B1', receivedSha256: 'a'.repeat(64), workflowId: 'OTHER' })).to.equal(undefined);
        expect(ledger.findEarlierCopy({ ...q, businessId: 'B1', receivedSha256: 'a'.repeat(64), since: new Date(T0.getTime() + 1000) }), 'outside the window').to.equal(undefined);
        expect(ledger.findEarlierCopy({ ...q, businessId: 'B1', receivedSha256: 'a'.repeat(64), excludeId: first.id })).to.equal(undefined);
        expect(ledger.findEarlierCopy({ ...q, businessId: 'B1', receivedSha256: 'a'.repeat(64), states: ['quarantined'] })).to.equal(undefined);
      });

      it('keeps the newest event time per sender and key; an older one never replaces it', () => {
        expect(ledger.latestEvent(MB, 'X26ABC2', 'appointment:k')).to.equal(undefined);
        ledger.recordLatestEvent(MB, 'X26ABC2', 'appointment:k', { eventTime: '2026-06-22T08:00:00.000Z', rowId: 7, sha256: 'x' });
        ledger.recordLatestEvent(MB, 'X26ABC2', 'appointment:k', { eventTime: '2026-06-21T08:00:00.000Z', rowId: 8, sha256: 'y' });
        expect(ledger.latestEvent(MB, 'X26ABC2', 'appointment:k')).to.deep.equal({ eventTime: '2026-06-22T08:00:00.000Z', rowId: 7, sha256: 'x' });
        ledger.recordLatestEvent(MB, 'X26ABC2', 'appointment:k', { eventTime: '2026-06-23T08:00:00.000Z', rowId: 9, sha256: null });
        expect(ledger.latestEvent(MB, 'X26ABC2', 'appointment:k')).to.deep.equal({ eventTime: '2026-06-23T08:00:00.000Z', rowId: 9, sha256: null });
        expect(ledger.latestEvent(MB, 'X26ABC9', 'appointment:k')).to.equal(undefined);
      });

      it('matches an acknowledgement to the send still waiting for one, and lists overdue acknowledgements', () => {
        const a = queued({ businessId: 'B2' });
        const b = queued({ businessId: 'B2' });
        for (const r of [a, b]) ledger.transition(r.id, 'sent', { patch: { messageId: `S${r.id}`, ackDueAt: new Date(T0.getTime() + 60_000) } });
        expect(ledger.findSentByBusinessId(MB, 'X26ABC2', 'B2')?.id, 'the newest waiting').to.equal(b.id);
        ledger.transition(b.id, 'confirmed', { patch: { relatedRowId: 99 } });
        expect(ledger.get(b.id)).to.include({ state: 'confirmed', relatedRowId: 99 });
        expect(ledger.findSentByBusinessId(MB, 'X26ABC2', 'B2')?.id, 'then the other, still waiting').to.equal(a.id);
        expect(ledger.findSentByBusinessId(MB, 'X26ABC9', 'B2')).to.equal(undefined);
        expect(ledger.overdueAcks(MB, new Date(T0.getTime() + 59_000), 10)).to.deep.equal([]);
        expect(ledger.overdueAcks(MB, new Date(T0.getTime() + 60_000), 10).map((r) => r.id), 'confirmed rows are not overdue').to.deep.equal([a.id]);
        expect(ledger.countOverdueAcks(MB, new Date(T0.getTime() + 60_000))).to.equal(1);
        expect(ledger.countOverdueAcks(MB, new Date(T0.getTime() + 59_000))).to.equal(0);
      });

      it('holds a later event back while an earlier one for a shared key is unsent', () => {
        const early = queued({ eventTime: new Date('2026-06-21T08:00:00Z') });
        const late = queued({ eventTime: new Date('2026-06-22T08:00:00Z') });
        const other = queued({ eventTime: new Date('2026-06-23T08:00:00Z') });
        ledger.setMessageKeys(early.id, ['appointment:1', 'patient:1']);
        ledger.setMessageKeys(late.id, ['appointment:1']);
        ledger.setMessageKeys(late.id, ['appointment:1']);
        ledger.setMessageKeys(other.id, ['appointment:2']);
        expect(ledger.earlierUnsent(ledger.get(late.id)!)?.id).to.equal(early.id);
        expect(ledger.earlierUnsent(ledger.get(early.id)!)).to.equal(undefined);
        expect(ledger.earlierUnsent(ledger.get(other.id)!)).to.equal(undefined);
        ledger.transition(early.id, 'sent', { patch: { messageId: 'S-early' } });
        expect(ledger.earlierUnsent(ledger.get(late.id)!), 'once sent, the later one goes').to.equal(undefined);
      });
    });

    describe('appointments and mailbox status', () => {
      it('keeps the latest appointment event per direction; an older replay never regresses it', () => {
        const row = queued();
        ledger.recordAppointment('K1', 'out', { eventKind: 'booked', trigger: 'S12', startAt: new Date('2026-12-01T09:00:00Z'), status: 'booked', at: new Date('2026-11-01T10:00:00Z'), messageRowId: row.id });
        ledger.recordAppointment('K1', 'out', { eventKind: 'cancelled', at: new Date('2026-11-01T09:30:00Z') });
        ledger.recordAppointment('K1', 'in', { eventKind: 'rescheduled' });
        expect(ledger.getAppointment('K1')).to.deep.equal({
          key: 'K1',
          lastSent: { eventKind: 'booked', trigger: 'S12', startAt: '2026-12-01T09:00:00.000Z', status: 'booked', at: '2026-11-01T10:00:00.000Z', messageRowId: row.id },
          lastReceived: { eventKind: 'rescheduled', trigger: null, startAt: null, status: null, at: T0.toISOString(), messageRowId: null },
        });
        expect(ledger.getAppointment('K2')).to.equal(undefined);
      });

      it('merges mailbox status patches', () => {
        expect(ledger.mailboxStatus(MB)).to.equal(undefined);
        ledger.setMailboxStatus(MB, { lastPollAt: T0, lastPollOk: false, lastPollError: 'MESH_UNAVAILABLE' });
        ledger.setMailboxStatus(MB, { lastHandshakeAt: new Date('2026-11-01T09:05:00Z') });
        ledger.setMailboxStatus(MB, {});
        expect(ledger.mailboxStatus(MB)).to.deep.equal({
          mailbox: MB,
          lastPollAt: T0.toISOString(),
          lastPollOk: false,
          lastPollError: 'MESH_UNAVAILABLE',
          lastHandshakeAt: '2026-11-01T09:05:00.000Z',
          lastTrackingAt: null,
        });
        ledger.setMailboxStatus(MB, { lastPollOk: true, lastPollError: null });
        expect(ledger.mailboxStatus(MB)).to.include({ lastPollOk: true, lastPollError: null });
      });
    });

    describe('retention', () => {
      it('purges settled rows with their events and old appointments, never rows in play; returns only its own payloads', () => {
        const inPlay = queued({ payloadPath: '/spool/a' });
        const sent = queued({ payloadPath: '/sent/b', ctlPath: '/sent/b.ctl' });
        ledger.transition(sent.id, 'sent');
        const failed = queued({ payloadPath: '/failed/c' });
        ledger.transition(failed.id, 'failed');
        const delivered = ledger.insertMessage({ direction: 'in', mailbox: MB, state: 'delivered', payloadPath: '/in/d' });
        ledger.transition(delivered.id, 'acknowledged');
        ledger.recordAppointment('OLD', 'out', { eventKind: 'booked' });
        clock = new Date('2026-12-01T00:00:00Z');
        const fresh = queued();
        ledger.transition(fresh.id, 'failed');
        const cutoff = new Date('2026-11-15T00:00:00Z');

        const payloadsOnly = ledger.purge({ olderThan: cutoff, payloadsOnly: true, now: clock });
        expect(payloadsOnly.rows).to.equal(0);
        expect(payloadsOnly.payloads.sort()).to.deep.equal(['/failed/c', '/sent/b', '/sent/b.ctl']);
        expect(ledger.get(sent.id)).to.include({ payloadPath: null, ctlPath: null });
        expect(ledger.get(delivered.id)!.payloadPath).to.equal('/in/d');
        expect(ledger.events(sent.id).at(-1)!.type).to.equal('payload_purged');

        const result = ledger.purge({ olderThan: cutoff, payloadsOnly: false, now: clock });
        expect(result.rows).to.equal(2);
        expect(result.payloads).to.deep.equal([]);
        expect(ledger.get(failed.id)).to.equal(undefined);
        expect(ledger.get(delivered.id)).to.equal(undefined);
        expect(ledger.events(failed.id)).to.deep.equal([]);
        expect(ledger.get(sent.id)!.state).to.equal('sent');
        expect(ledger.get(inPlay.id)!.state).to.equal('queued');
        expect(ledger.get(fresh.id)!.state).to.equal('failed');
        expect(ledger.getAppointment('OLD')).to.equal(undefined);
        // The guard is off again: events stay append-only after a purge.
        expect(() => fixture.raw('DELETE FROM events')).to.throw(/append-only/);
      });

      it('purges more rows than one batch', () => {
        ledger.transaction(() => {
          for (let i = 0; i < 1100; i++) {
            const r = queued({ payloadPath: `/failed/${i}` });
            ledger.transition(r.id, 'failed');
          }
        });
        const result = ledger.purge({ olderThan: new Date(T0.getTime() + 1), payloadsOnly: false, now: T0 });
        expect(result.rows).to.equal(1100);
        expect(result.payloads).to.have.length(1100);
        expect(ledger.list({})).to.deep.equal([]);
      });
    });
  });
}

/** A fresh row of `direction` in `state`, reached by legal moves from a start state. */
function reach(ledger: LedgerStore, direction: Direction, state: MessageState): MessageRow {
  const path = pathTo(direction, state);
  let row = ledger.insertMessage({ direction, mailbox: MB, state: path[0] });
  for (const next of path.slice(1)) row = ledger.transition(row.id, next);
  return row;
}

function pathTo(direction: Direction, target: MessageState): MessageState[] {
  const queue: MessageState[][] = INITIAL_STATES[direction].map((s) => [s]);
  while (queue.length) {
    const p = queue.shift()!;
    const last = p[p.length - 1];
    if (last === target) return p;
    for (const next of TRANSITIONS[direction][last] ?? []) if (!p.includes(next)) queue.push([...p, next]);
  }
  throw new Error(`${target} is unreachable for ${direction}`);
}
