import { expect } from 'chai';
import { evaluateReadiness, type ReadinessCheck, type ReadinessInput } from '../../src/daemon/health';

const NOW = new Date('2026-11-24T10:00:00Z');
const FIVE_MIN = 5 * 60_000;
const cert = { expired: false, notAfter: new Date('2027-11-24T00:00:00Z'), daysLeft: 364 };

function input(over: Partial<ReadinessInput> = {}): ReadinessInput {
  return {
    now: NOW,
    ledgerOpen: true,
    pollIntervalMs: FIVE_MIN,
    mailboxes: [{ id: 'X26ABC1', lastSuccessfulPoll: new Date(NOW.getTime() - 60_000), certificate: cert }],
    ...over,
  };
}

describe('readiness rule (evaluateReadiness)', () => {
  it('is ready with the ledger open, a recent poll and a valid certificate', () => {
    const r = evaluateReadiness(input());
    expect(r.ok).to.equal(true);
    expect(r.checks).to.have.keys('ledger', 'poll:X26ABC1', 'certificate:X26ABC1');
  });

  it('warns, without failing, about stale messages and overdue business acknowledgements', () => {
    const r = evaluateReadiness(input({ mailboxes: [{ id: 'X26ABC1', lastSuccessfulPoll: new Date(NOW.getTime() - 60_000), certificate: cert, stale: 2, ackOverdue: 1 }] }));
    expect(r.ok).to.equal(true);
    expect(r.checks['stale:X26ABC1']).to.include({ ok: true, warning: true });
    expect((r.checks['stale:X26ABC1'] as ReadinessCheck).detail).to.match(/^2 received message\(s\) set aside as stale/);
    expect(r.checks['ack:X26ABC1']).to.include({ ok: true, warning: true });
    expect(evaluateReadiness(input()).checks).to.not.have.any.keys('stale:X26ABC1', 'ack:X26ABC1');
  });

  it('accepts a poll exactly two intervals old and refuses one a second older', () => {
    const at = (ms: number) => evaluateReadiness(input({ mailboxes: [{ id: 'X26ABC1', lastSuccessfulPoll: new Date(NOW.getTime() - ms), certificate: cert }] }));
    expect(at(2 * FIVE_MIN).ok).to.equal(true);
    const late = at(2 * FIVE_MIN + 1000);
    expect(late.ok).to.equal(false);
    expect(late.checks['poll:X26ABC1']).to.deep.equal({ ok: false, detail: 'last successful poll 601s ago (limit 600s)' });
  });

  it('is not ready before the first successful poll of every mailbox', () => {
    const r = evaluateReadiness(input({ mailboxes: [{ id: 'X26ABC1', lastSuccessfulPoll: NOW }, { id: 'X26ABC2' }] }));
    expect(r.ok).to.equal(false);
    expect(r.checks['poll:X26ABC2']).to.deep.equal({ ok: false, detail: 'no successful poll yet' });
  });

  it('is not ready when the ledger is closed or a certificate has expired', () => {
    expect(evaluateReadiness(input({ ledgerOpen: false })).ok).to.equal(false);
    const expired = evaluateReadiness(input({ mailboxes: [{ id: 'X26ABC1', lastSuccessfulPoll: NOW, certificate: { expired: true, notAfter: new Date('2026-11-01T00:00:00Z'), daysLeft: -23 } }] }));
    expect(expired.ok).to.equal(false);
    expect(expired.checks['certificate:X26ABC1']).to.deep.equal({ ok: false, detail: 'client certificate expired on 2026-11-01' });
  });
});
