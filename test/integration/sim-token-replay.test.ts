import { expect } from 'chai';
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSimulator } from '../../src/sim';
import { buildToken, TokenChecker } from '../../src/sim/auth';
import { SimHarness } from './sim-helpers';

const MB = 'X26ABC1';
const HOUR = 3_600_000;

describe('simulator: a used token stays used across a restart', function () {
  this.timeout(60_000);
  let tmp: string;
  beforeEach(() => {
    tmp = mkdtempSync(join(tmpdir(), 'meshd-sim-tokens-'));
  });
  afterEach(() => rmSync(tmp, { recursive: true, force: true }));

  it('refuses a token replayed after the simulator restarts, as before it', async () => {
    const dir = join(tmp, 'sim');
    const first = new SimHarness(await startSimulator({ dir }), join(tmp, 'h1'), [MB]);
    const token = first.token(MB);
    const inbox = { path: `/messageexchange/${MB}/inbox`, as: MB, authorization: token };
    expect((await first.request(inbox)).status).to.equal(200);
    expect((await first.request(inbox)).json().detail[0].code).to.equal('TokenReused');
    await first.close();

    const second = new SimHarness(await startSimulator({ dir }), join(tmp, 'h2'), [MB]);
    try {
      const replay = await second.request(inbox);
      expect(replay.status).to.equal(403);
      expect(replay.json().detail[0].code).to.equal('TokenReused');
      expect((await second.request({ path: `/messageexchange/${MB}/inbox`, as: MB })).status).to.equal(200);
    } finally {
      await second.close();
    }
  });

  it('takes back only tokens inside the ±2 h window, skips a line cut short by a crash, and trims the file', () => {
    const journal = join(tmp, 'used-tokens');
    const directory = { sharedKey: 'TestKey', passwordOf: () => 'pw-one' };
    const now = Date.UTC(2026, 2, 2, 10, 30);
    const token = (nonce: string, at: number) => buildToken(MB, 'pw-one', 'TestKey', nonce, 0, new Date(at));
    const before = new TokenChecker(directory, journal);
    before.load(now - 3 * HOUR);
    expect(before.check(token('old', now - 3 * HOUR), MB, now - 3 * HOUR).ok).to.equal(true);
    expect(before.check(token('recent', now - HOUR), MB, now - HOUR).ok).to.equal(true);
    appendFileSync(journal, `${MB}:torn:0:2026030`);

    const after = new TokenChecker(directory, journal);
    after.load(now);
    expect(after.check(token('recent', now - HOUR), MB, now)).to.include({ ok: false, reason: 'TokenReused' });
    expect(readFileSync(journal, 'utf8')).to.equal(`${MB}:recent:0:202603020930\n`);
    before.close();
    after.close();
  });

  it('journals the tokens it accepts after rewriting the file into the new file', () => {
    const journal = join(tmp, 'used-tokens');
    const directory = { sharedKey: 'TestKey', passwordOf: () => 'pw-one' };
    const now = Date.UTC(2026, 2, 2, 10, 30);
    const token = (nonce: string) => buildToken(MB, 'pw-one', 'TestKey', nonce, 0, new Date(now));
    const checker = new TokenChecker(directory, journal);
    checker.load(now);
    expect(checker.check(token('first'), MB, now).ok).to.equal(true);
    checker.reset(); // replaces the file by rename, as pruning does
    expect(checker.check(token('second'), MB, now).ok).to.equal(true);
    checker.close();
    expect(readFileSync(journal, 'utf8')).to.equal(`${MB}:second:0:202603021030\n`);
  });
});
