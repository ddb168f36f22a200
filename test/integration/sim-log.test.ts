import { expect } from 'chai';
import type { Logger } from '../../src/log';
import { startHarness, type SimHarness } from './sim-helpers';

interface Entry {
  event: string;
  message: string;
  fields?: Record<string, unknown>;
}

function recordingLogger(entries: Entry[]): Logger {
  const log = (event: string, message: string, fields?: Record<string, unknown>): void => void entries.push({ event, message, fields });
  const logger: Logger = { error: log, warn: log, info: log, debug: log, child: () => logger };
  return logger;
}

describe('simulator access log', function () {
  this.timeout(60_000);
  const entries: Entry[] = [];
  let h: SimHarness;

  before(async () => {
    h = await startHarness({ logger: recordingLogger(entries) });
  });
  after(async () => h.close());

  it('logs one SIM_REQUEST per request with status, and never the query string or the token', async () => {
    const token = h.token('X26ABC2');
    await h.request({ path: '/messageexchange/X26ABC2/inbox?max_results=10', as: 'X26ABC2', authorization: token });
    // The line is written when the response closes on the server side: wait for it by polling.
    for (let i = 0; i < 100 && entries.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(entries).to.have.length(1);
    expect(entries[0].event).to.equal('SIM_REQUEST');
    expect(entries[0].fields).to.include({ method: 'GET', path: '/messageexchange/X26ABC2/inbox', status: 200 });
    expect(JSON.stringify(entries)).not.to.include('max_results');
    expect(JSON.stringify(entries)).not.to.include(token.split(':')[4]);
  });
});
