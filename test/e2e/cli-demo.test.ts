import { expect } from 'chai';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runMeshd } from '../integration/support/daemon-env';

describe('meshd demo', function () {
  this.timeout(120_000);

  it('carries CSV as FHIR over MESH, lands HL7 v2 at the receiver, and ends confirmed by its business ACKs, then exits 0', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'meshd-demo-test-'));
    try {
      const r = await runMeshd(['demo', '--dir', dir]);
      expect(r.code, r.stderr + r.stdout).to.equal(0);
      expect(r.stdout).to.match(/X26ABC2 #\d+ in\s+acknowledged/);
      // The receiver acknowledged each message on the _ACK workflow; the sender's sends ended confirmed.
      expect(r.stdout.match(/X26ABC1 #\d+ out\s+confirmed/g)).to.have.length(2);
      expect(r.stdout).to.include('X26ABC1 cycle: took in 2 acknowledgement(s)');
      expect(r.stdout).to.match(/X26ABC2 #\d+ out\s+(sent|acknowledged)\s+\S+\.ack\.json/);
      const inDir = join(dir, 'sim', 'mailboxes', 'X26ABC2', 'in');
      const delivered = readdirSync(inDir).filter((n) => n.endsWith('.dat')).map((n) => readFileSync(join(inDir, n), 'utf8'));
      expect(delivered).to.have.length(2);
      expect(delivered.some((d) => /^MSH\|.*\|SIU\^S12/m.test(d.replace(/\r/g, '\n')))).to.equal(true);
      expect(delivered.some((d) => /^MSH\|.*\|ADT\^A28/m.test(d.replace(/\r/g, '\n')))).to.equal(true);
      // What travelled over MESH was FHIR: the sender's ledger recorded the csv>fhir-r4 transform.
      expect(r.stdout).to.match(/CSV → FHIR R4/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
