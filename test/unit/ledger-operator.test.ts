import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { openLedger, parseAge, parseSince, resolveReview, retryMessage, type SqliteLedger } from '../../src/ledger';
import { MeshdError } from '../../src/errors';

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).to.be.instanceOf(MeshdError);
    return (err as MeshdError).code;
  }
  throw new Error('expected a MeshdError');
}

describe('ledger operator actions', () => {
  let dir: string;
  let ledger: SqliteLedger;
  let payload: string;

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshd-ledger-op-'));
    ledger = openLedger(path.join(dir, 'meshd.db'), { now: () => new Date('2026-11-01T09:00:00Z') });
    payload = path.join(dir, 'payload.dat');
    fs.writeFileSync(payload, 'x');
  });
  afterEach(() => {
    ledger.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  function outRow(state: 'failed' | 'undeliverable' | 'needs_review' | 'sent' | 'queued', extra: Record<string, unknown> = {}) {
    const row = ledger.insertMessage({ direction: 'out', mailbox: 'X26ABC1', state: 'queued', payloadPath: payload, ...extra });
    if (state === 'queued') return row;
    if (state === 'failed') return ledger.transition(row.id, 'failed', { patch: { errorCode: 'MESH_REJECTED', attempts: 3 } });
    if (state === 'needs_review') return ledger.transition(row.id, 'needs_review');
    ledger.transition(row.id, 'uploading', { patch: { messageId: 'OLD_ID' } });
    ledger.transition(row.id, 'sent');
    return state === 'sent' ? ledger.get(row.id)! : ledger.transition(row.id, 'undeliverable');
  }

  describe('retry', () => {
    it('puts a failed outbound row back to queued with attempts and error reset, as a recorded event', () => {
      const row = outRow('failed');
      const retried = retryMessage(ledger, row.id);
      expect(retried).to.include({ state: 'queued', attempts: 0, errorCode: null, nextAttemptAt: null });
      expect(ledger.events(row.id).at(-1)).to.deep.include({ type: 'operator_retry', fromState: 'failed', toState: 'queued' });
      expect(ledger.events(row.id).at(-1)!.detail).to.include({ previousErrorCode: 'MESH_REJECTED' });
    });

    it('puts an undeliverable row back to queued as a new message, keeping the old id in the history', () => {
      const row = outRow('undeliverable');
      const retried = retryMessage(ledger, row.id);
      expect(retried).to.include({ state: 'queued', messageId: null, chunksDone: 0 });
      expect(ledger.events(row.id).at(-1)!.detail).to.include({ previousMessageId: 'OLD_ID' });
    });

    it('puts a quarantined inbound row back to receiving when its payload is present', () => {
      const row = ledger.insertMessage({ direction: 'in', mailbox: 'X26ABC1', state: 'quarantined', payloadPath: payload, errorCode: 'TRANSFORM_FAILED' });
      expect(retryMessage(ledger, row.id).state).to.equal('receiving');
    });

    it('puts a quarantined inbound row MESH still holds back to receiving even without a payload (downloaded again)', () => {
      const row = ledger.insertMessage({ direction: 'in', mailbox: 'X26ABC1', state: 'quarantined', messageId: 'BIG', errorCode: 'TOO_LARGE' });
      expect(retryMessage(ledger, row.id).state).to.equal('receiving');
    });

    it('refuses a quarantined inbound row that MESH no longer holds and whose payload is gone', () => {
      const row = ledger.insertMessage({ direction: 'in', mailbox: 'X26ABC1', state: 'quarantined', acknowledgedAt: new Date(), payloadPath: path.join(dir, 'gone.dat') });
      expect(code(() => retryMessage(ledger, row.id))).to.equal('LEDGER_CONFLICT');
    });

    it('refuses when the payload is gone', () => {
      const row = outRow('failed');
      fs.rmSync(payload);
      expect(code(() => retryMessage(ledger, row.id))).to.equal('LEDGER_CONFLICT');
      expect(ledger.get(row.id)!.state).to.equal('failed');
    });

    it('refuses other states with a clear message, pointing needs_review at resolve', () => {
      for (const state of ['queued', 'sent'] as const) expect(code(() => retryMessage(ledger, outRow(state).id))).to.equal('LEDGER_CONFLICT');
      const review = outRow('needs_review');
      try {
        retryMessage(ledger, review.id);
        expect.fail('should refuse');
      } catch (err) {
        expect((err as MeshdError).hint).to.include('meshd ledger resolve');
      }
      expect(code(() => retryMessage(ledger, 999))).to.equal('LEDGER_NOT_FOUND');
    });
  });

  describe('resolve', () => {
    it('settles needs_review as sent with the MESH id and the note in the history', () => {
      const row = outRow('needs_review');
      const done = resolveReview(ledger, row.id, 'sent', 'confirmed with recipient by phone', '20261101090000000000_ABCDEF');
      expect(done).to.include({ state: 'sent', messageId: '20261101090000000000_ABCDEF' });
      expect(ledger.events(row.id).at(-1)).to.deep.include({
        type: 'operator_resolve',
        fromState: 'needs_review',
        toState: 'sent',
        detail: { as: 'sent', note: 'confirmed with recipient by phone', messageId: '20261101090000000000_ABCDEF' },
      });
    });

    it('settles needs_review as failed, after which retry may requeue it', () => {
      const row = outRow('needs_review');
      expect(resolveReview(ledger, row.id, 'failed', 'MESH tracking has no such message')).to.include({ state: 'failed', errorCode: 'RESOLVED_FAILED' });
      expect(retryMessage(ledger, row.id).state).to.equal('queued');
    });

    it('refuses rows not in needs_review, an empty note, and a message id with --as failed', () => {
      expect(code(() => resolveReview(ledger, outRow('failed').id, 'sent', 'n'))).to.equal('LEDGER_CONFLICT');
      const row = outRow('needs_review');
      expect(code(() => resolveReview(ledger, row.id, 'sent', '  '))).to.equal('LEDGER_NOTE_REQUIRED');
      expect(code(() => resolveReview(ledger, row.id, 'failed', 'n', 'X'))).to.equal('LEDGER_BAD_RESOLUTION');
      expect(ledger.get(row.id)!.state).to.equal('needs_review');
    });
  });
});

describe('ledger periods', () => {
  const now = new Date('2026-11-24T12:00:00Z');
  it('parses ages with units', () => {
    expect(parseAge('30d')).to.equal(30 * 86_400_000);
    expect(parseAge('12h')).to.equal(12 * 3_600_000);
    expect(parseAge('2w')).to.equal(14 * 86_400_000);
    expect(parseAge('90m')).to.equal(90 * 60_000);
  });
  it('parses --since as an age or a date', () => {
    expect(parseSince('7d', now).toISOString()).to.equal('2026-11-17T12:00:00.000Z');
    expect(parseSince('2026-11-01', now).toISOString()).to.equal('2026-11-01T00:00:00.000Z');
    expect(parseSince('2026-11-01T08:30:00Z', now).toISOString()).to.equal('2026-11-01T08:30:00.000Z');
  });
  it('refuses anything else as a usage error', () => {
    for (const bad of ['', '30', 'd', '30x', '-5d', '1.5d']) expect(() => parseAge(bad), bad).to.throw(MeshdError).with.property('kind', 'usage');
    for (const bad of ['', 'yesterday', '2026-13-45', '11/01/2026']) expect(() => parseSince(bad, now), bad).to.throw(MeshdError).with.property('kind', 'usage');
  });
});
