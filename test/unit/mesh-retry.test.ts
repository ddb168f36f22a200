import { expect } from 'chai';
import { RetryPolicy } from '../../src/mesh/retry';
import { MeshTransientError, parseRetryAfter } from '../../src/mesh/errors';
import { _internal } from '../../src/mesh/client';

/** A fake clock whose sleep advances time and records the delays asked for. */
function fakeTime(start = 1_000_000) {
  let now = start;
  const delays: number[] = [];
  return {
    now: () => now,
    sleep: async (ms: number) => {
      delays.push(ms);
      now += ms;
    },
    delays,
  };
}

const retryAll = () => ({ retry: true as const });

describe('retry policy', () => {
  it('backs off from the initial delay doubling to the cap, with full jitter', () => {
    const top = new RetryPolicy({ initialDelayMs: 1000, maxDelayMs: 60_000 }, { random: () => 0.999999 });
    expect([1, 2, 3, 4, 5, 6, 7, 8].map((n) => top.backoff(n))).to.deep.equal([999, 1999, 3999, 7999, 15999, 31999, 59999, 59999]);
    const bottom = new RetryPolicy({}, { random: () => 0 });
    expect(bottom.backoff(5)).to.equal(0);
  });

  it('stops after the configured number of attempts and rethrows the last error', async () => {
    const t = fakeTime();
    const policy = new RetryPolicy({ attempts: 6 }, { ...t, random: () => 0.5 });
    let calls = 0;
    const err = await policy
      .run(async () => {
        calls++;
        throw new Error(`fail ${calls}`);
      }, retryAll)
      .catch((e) => e);
    expect(calls).to.equal(6);
    expect(err.message).to.equal('fail 6');
    expect(t.delays).to.deep.equal([500, 1000, 2000, 4000, 8000]);
  });

  it('honours Retry-After instead of the backoff', async () => {
    const t = fakeTime();
    const policy = new RetryPolicy({}, { ...t, random: () => 0 });
    let calls = 0;
    const value = await policy.run(
      async () => {
        if (++calls < 3) throw new Error('busy');
        return 'ok';
      },
      () => ({ retry: true, retryAfterMs: 7000 }),
    );
    expect(value).to.equal('ok');
    expect(t.delays).to.deep.equal([7000, 7000]);
  });

  it('gives up rather than exceed the total time budget', async () => {
    const t = fakeTime();
    const policy = new RetryPolicy({ attempts: 100, maxTotalMs: 300_000 }, { ...t, random: () => 0.999999 });
    let calls = 0;
    await policy.run(async () => {
      calls++;
      throw new Error('down');
    }, retryAll).catch(() => undefined);
    const total = t.delays.reduce((a, b) => a + b, 0);
    expect(total).to.be.at.most(300_000);
    expect(calls).to.be.lessThan(100);
    // The next delay would have broken the budget.
    expect(total + 59_999).to.be.greaterThan(300_000);
  });

  it('does not retry when the classifier says no', async () => {
    const t = fakeTime();
    let calls = 0;
    await new RetryPolicy({}, t)
      .run(async () => {
        calls++;
        throw new Error('403');
      }, () => ({ retry: false }))
      .catch(() => undefined);
    expect(calls).to.equal(1);
    expect(t.delays).to.deep.equal([]);
  });

  it('a Retry-After longer than the remaining budget ends the retries', async () => {
    const t = fakeTime();
    let calls = 0;
    await new RetryPolicy({ maxTotalMs: 10_000 }, t)
      .run(async () => {
        calls++;
        throw new Error('429');
      }, () => ({ retry: true, retryAfterMs: 60_000 }))
      .catch(() => undefined);
    expect(calls).to.equal(1);
  });
});

describe('Retry-After parsing', () => {
  it('reads seconds and HTTP dates', () => {
    const now = Date.parse('2026-11-24T10:00:00Z');
    expect(parseRetryAfter('12', now)).to.equal(12_000);
    expect(parseRetryAfter('Tue, 24 Nov 2026 10:00:30 GMT', now)).to.equal(30_000);
    expect(parseRetryAfter('Tue, 24 Nov 2026 09:00:30 GMT', now)).to.equal(0);
    expect(parseRetryAfter('soon', now)).to.equal(undefined);
    expect(parseRetryAfter(undefined, now)).to.equal(undefined);
  });
});

describe('which failures are retried', () => {
  const { classifyFirstPost, classifyIdempotent } = _internal;
  const status = (s: number, retryAfterMs?: number) => new MeshTransientError(`HTTP ${s}`, { status: s, retryAfterMs });
  const network = (code: string) => new MeshTransientError('network', { cause: Object.assign(new Error(code), { code }) });

  it('retries 425/429/502/503/504 and network errors on ordinary calls, not 500', () => {
    for (const s of [425, 429, 502, 503, 504]) expect(classifyIdempotent(status(s)).retry, String(s)).to.equal(true);
    expect(classifyIdempotent(status(500)).retry).to.equal(false);
    expect(classifyIdempotent(network('ECONNRESET')).retry).to.equal(true);
    expect(classifyIdempotent(new Error('other')).retry).to.equal(false);
  });

  it('retries the first POST only when MESH answered that it did not take it', () => {
    for (const s of [425, 429, 503]) expect(classifyFirstPost(status(s)).retry, String(s)).to.equal(true);
    for (const s of [500, 502, 504]) expect(classifyFirstPost(status(s)).retry, String(s)).to.equal(false);
    expect(classifyFirstPost(network('ECONNRESET')).retry).to.equal(false);
    expect(classifyFirstPost(network('UND_ERR_HEADERS_TIMEOUT')).retry).to.equal(false);
    // Never connected at all: nothing can have been stored.
    expect(classifyFirstPost(network('ECONNREFUSED')).retry).to.equal(true);
  });

  it('passes Retry-After through', () => {
    expect(classifyIdempotent(status(429, 5000))).to.deep.equal({ retry: true, retryAfterMs: 5000 });
  });
});
