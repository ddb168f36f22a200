import { expect } from 'chai';
import { createHmac } from 'node:crypto';
import { meshTimestamp, meshToken } from '../../src/mesh/token';

describe('mesh token', () => {
  const fixed = {
    mailboxId: 'x26abc1',
    password: 'password',
    sharedKey: 'TestKey',
    nonce: '0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9',
    nonceCount: 0,
    now: new Date('2026-11-24T10:05:59.999Z'),
  };

  it('matches a known vector (HMAC-SHA256 of MAILBOX:nonce:count:password:timestamp keyed by the shared key)', () => {
    // Vector computed independently with: printf '%s' '<input>' | openssl dgst -sha256 -hmac TestKey
    expect(meshToken(fixed)).to.equal(
      'NHSMESH X26ABC1:0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9:0:202611241005:a5aaf510b4c960a4bed680c41103b778bb403e142d7b25e2c55336d9c53bd512',
    );
  });

  it('puts the timestamp 4th in the header and never the password', () => {
    const parts = meshToken(fixed).slice('NHSMESH '.length).split(':');
    expect(parts).to.have.length(5);
    expect(parts[3]).to.equal('202611241005');
    expect(meshToken(fixed)).not.to.contain('password');
  });

  it('upper-cases the mailbox in header and HMAC', () => {
    const token = meshToken(fixed);
    expect(token.startsWith('NHSMESH X26ABC1:')).to.equal(true);
    const mac = createHmac('sha256', 'TestKey').update(`X26ABC1:${fixed.nonce}:0:password:202611241005`).digest('hex');
    expect(token.endsWith(mac)).to.equal(true);
  });

  it('uses UTC yyyyMMddHHmm regardless of the local zone', () => {
    expect(meshTimestamp(new Date('2026-03-29T00:59:00Z'))).to.equal('202603290059');
    expect(meshTimestamp(new Date('2026-12-31T23:09:00-02:00'))).to.equal('202701010109');
  });

  it('makes a new random nonce for every token', () => {
    const { nonce: _n, ...rest } = fixed;
    const a = meshToken(rest);
    const b = meshToken(rest);
    expect(a).not.to.equal(b);
    expect(a.split(':')[1]).to.match(/^[0-9a-f-]{36}$/);
  });
});
