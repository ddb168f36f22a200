import { expect } from 'chai';
import { buildToken, TokenChecker } from '../../src/sim/auth';

const KEY = 'TestKey';
const PASSWORDS: Record<string, string> = { X26ABC1: 'pw-one', X26ABC2: 'pw-two' };
const NOW = Date.UTC(2026, 2, 2, 10, 30, 0);

function checker(): TokenChecker {
  return new TokenChecker({ sharedKey: KEY, passwordOf: (mb) => PASSWORDS[mb] });
}

describe('sim token checks', () => {
  it('accepts a token from the reference Node recipe (docs/mesh-protocol.md, Authorization token)', () => {
    const token = buildToken('X26ABC1', 'pw-one', KEY, 'nonce-1', 0, new Date(NOW));
    expect(token).to.match(/^NHSMESH X26ABC1:nonce-1:0:202603021030:[0-9a-f]{64}$/);
    expect(checker().check(token, 'X26ABC1', NOW)).to.deep.equal({ ok: true, mailbox: 'X26ABC1' });
  });

  it('accepts a timestamp exactly 2 h away and refuses one a minute beyond', () => {
    const c = checker();
    const at = (ms: number): string => buildToken('X26ABC1', 'pw-one', KEY, `n${ms}`, 0, new Date(ms));
    expect(c.check(at(NOW - 2 * 3600_000), 'X26ABC1', NOW).ok).to.equal(true);
    expect(c.check(at(NOW + 2 * 3600_000), 'X26ABC1', NOW).ok).to.equal(true);
    expect(c.check(at(NOW - 2 * 3600_000 - 60_000), 'X26ABC1', NOW)).to.include({ ok: false, reason: 'TokenExpired' });
    expect(c.check(at(NOW + 2 * 3600_000 + 60_000), 'X26ABC1', NOW)).to.include({ ok: false, reason: 'TokenExpired' });
  });

  it('refuses a token the second time; a new nonce count makes a new token', () => {
    const c = checker();
    const token = buildToken('X26ABC1', 'pw-one', KEY, 'same', 3, new Date(NOW));
    expect(c.check(token, 'X26ABC1', NOW).ok).to.equal(true);
    expect(c.check(token, 'X26ABC1', NOW)).to.include({ ok: false, reason: 'TokenReused' });
    // A new count with the same nonce is a new token.
    expect(c.check(buildToken('X26ABC1', 'pw-one', KEY, 'same', 4, new Date(NOW)), 'X26ABC1', NOW).ok).to.equal(true);
  });

  it('does not burn a token that failed for another reason', () => {
    const c = checker();
    const token = buildToken('X26ABC1', 'pw-one', KEY, 'n', 0, new Date(NOW));
    expect(c.check(token, 'X26ABC2', NOW)).to.include({ reason: 'MailboxMismatch' });
    expect(c.check(token, 'X26ABC1', NOW).ok).to.equal(true);
  });

  const MALFORMED: Array<[string, string | undefined, string]> = [
    ['missing', undefined, 'TokenMissing'],
    ['lower-case scheme', 'nhsmesh X26ABC1:n:0:202603021030:' + 'a'.repeat(64), 'TokenMalformed'],
    ['no scheme', 'X26ABC1:n:0:202603021030:' + 'a'.repeat(64), 'TokenMalformed'],
    ['six parts', 'NHSMESH X26ABC1:n:0:x:202603021030:' + 'a'.repeat(64), 'TokenMalformed'],
    ['non-numeric count', 'NHSMESH X26ABC1:n:zero:202603021030:' + 'a'.repeat(64), 'TokenMalformed'],
    ['timestamp with seconds', 'NHSMESH X26ABC1:n:0:20260302103000:' + 'a'.repeat(64), 'TokenMalformed'],
    ['impossible month', 'NHSMESH X26ABC1:n:0:202613021030:' + 'a'.repeat(64), 'TokenMalformed'],
    ['short HMAC', 'NHSMESH X26ABC1:n:0:202603021030:abc', 'TokenMalformed'],
    ['mailbox other than the path mailbox', 'NHSMESH X26ZZZ9:n:0:202603021030:' + 'a'.repeat(64), 'MailboxMismatch'],
  ];
  for (const [name, header, reason] of MALFORMED) {
    it(`refuses a token: ${name}`, () => {
      expect(checker().check(header, 'X26ABC1', NOW)).to.include({ ok: false, reason });
    });
  }

  it('says unknown mailbox when the path and token agree on a mailbox it does not have', () => {
    expect(checker().check(buildToken('X26ZZZ9', 'x', KEY, 'n', 0, new Date(NOW)), 'X26ZZZ9', NOW)).to.include({ reason: 'UnknownMailbox' });
  });

  it('accepts an upper-case HMAC (MESH compares case-insensitively)', () => {
    const token = buildToken('X26ABC1', 'pw-one', KEY, 'n', 0, new Date(NOW));
    const parts = token.split(':');
    parts[4] = parts[4].toUpperCase();
    expect(checker().check(parts.join(':'), 'X26ABC1', NOW).ok).to.equal(true);
  });
});
