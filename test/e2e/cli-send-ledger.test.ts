import { expect } from 'chai';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config';
import { ledgerPath, openLedger } from '../../src/ledger';
import { startSimulator, type Simulator } from '../../src/sim';
import { runMeshd } from '../support/cli';

function meshd(args: string[]) {
  return runMeshd(args, { env: { MESHD_LOG_FORMAT: 'json' } });
}

/** `meshd send` rows in the ledger (issue 9, finding 12): true settings, and the user's file is never taken. */
describe('meshd send and the ledger (as a process)', function () {
  this.timeout(60_000);
  let root: string;
  let sim: Simulator;
  let config: string;

  beforeEach(async () => {
    root = mkdtempSync(join(tmpdir(), 'meshd-e2e-send-'));
    sim = await startSimulator({ dir: join(root, 'sim'), seed: 5 });
    config = sim.client('X26ABC1').configPath;
  });
  afterEach(async () => {
    await sim.close();
    rmSync(root, { recursive: true, force: true });
  });

  async function rows() {
    const ledger = openLedger(ledgerPath((await loadConfig(config, process.env, { skipSecrets: true })).dataDir), { create: false });
    try {
      return ledger.list({ direction: 'out' });
    } finally {
      ledger.close();
    }
  }

  it('records the compress and chunk size the send really used, and files a copy into sent/ as the daemon does', async () => {
    const file = join(root, 'plain.txt');
    writeFileSync(file, 'x'.repeat(3000));
    const r = await meshd(['--config', config, 'send', file, '--to', 'X26ABC2', '--workflow', 'TEST_WORKFLOW', '--no-compress', '--chunk-size', '1KiB']);
    expect(r.code, r.stderr).to.equal(0);
    const [row] = await rows();
    const sentDir = join(sim.dir, 'mailboxes', 'X26ABC1', 'sent');
    expect(row).to.include({ state: 'sent', compress: false, chunkSize: 1024, chunksTotal: 3, payloadPath: join(sentDir, 'plain.txt'), fileName: 'plain.txt' });
    expect(readdirSync(sentDir).sort()).to.deep.equal(['plain.txt', 'plain.txt.ctl']);
    expect(readFileSync(file, 'utf8')).to.equal('x'.repeat(3000));
    expect(readdirSync(join((await loadConfig(config, process.env, { skipSecrets: true })).dataDir, 'spool', 'X26ABC1'))).to.deep.equal([]);
  });

  it('an unclear send is parked with a spool copy: retrying it after review sends the copy, never moving the user\'s file', async () => {
    const file = join(root, 'booking.txt');
    writeFileSync(file, 'PATIENT 9991000119 booked');
    sim.setFaults('send:reset-after-accept=1');
    const r = await meshd(['--config', config, 'send', file, '--to', 'X26ABC2', '--workflow', 'TEST_WORKFLOW']);
    expect(r.code, r.stderr).to.equal(8);
    sim.setFaults(undefined);
    const [parked] = await rows();
    expect(parked.state).to.equal('needs_review');
    expect(parked.payloadPath).to.not.equal(file);
    expect(existsSync(parked.payloadPath!)).to.equal(true);

    expect((await meshd(['--config', config, 'ledger', 'resolve', String(parked.id), '--as', 'failed', '--note', 'checked tracking: not there'])).code).to.equal(0);
    expect((await meshd(['--config', config, 'ledger', 'retry', String(parked.id)])).code).to.equal(0);
    const run = await meshd(['--config', config, 'run', '--once']);
    expect(run.code, run.stderr).to.equal(0);
    const [after] = await rows();
    expect(after.state).to.equal('sent');
    expect(readFileSync(file, 'utf8')).to.equal('PATIENT 9991000119 booked');
    const sentDir = join(sim.dir, 'mailboxes', 'X26ABC1', 'sent');
    expect(readdirSync(sentDir)).to.include('booking.txt');
  });
});
