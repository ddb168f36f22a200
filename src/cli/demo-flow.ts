import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { PRIVATE_FILE_MODE, writeFileAtomic } from '../safe-fs';
import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { dump, load } from 'js-yaml';
import { loadConfig } from '../config';
import { createLogger } from '../log';
import { startSimulator } from '../sim';
import type { CanonicalRecord } from '../transform/model';
import { getFormat } from '../transform/registry';
import { meshPortFor } from '../transfer/mesh-port';
import { Daemon } from '../daemon/daemon';
import { writeLines } from './output';

/**
 * The showcase behind `npm run demo`: a simulator with two mailboxes (a trust's PAS and a GP
 * system), synthetic registration and appointment CSV dropped in the PAS's out/, one daemon
 * cycle each side — CSV → FHIR R4 over MESH (mTLS, HMAC tokens, gzip) → HL7 v2 in the GP's in/ —
 * then the GP's business acknowledgements back to the PAS, whose sends end `confirmed`, and the ledgers. Everything lives in one folder; nothing leaves this machine.
 */
const PAS = 'X26ABC1';
const GP = 'X26ABC2';
const WORKFLOW = 'MESHD_DEMO_APPT';

const FIXTURES = resolve(__dirname, '..', '..', '..', 'fixtures', 'canonical');

function line(text = ''): void {
  writeLines([text]);
}

export async function runDemo(opts: { dir?: string; keep?: boolean; json?: boolean }): Promise<number> {
  const started = Date.now();
  const dir = opts.dir ? resolve(opts.dir) : mkdtempSync(join(tmpdir(), 'meshd-demo-'));
  const log = createLogger({ level: 'warn' });
  const sim = await startSimulator({ dir: join(dir, 'sim'), mailboxes: [PAS, GP], workflows: [WORKFLOW, `${WORKFLOW}_ACK`] });
  try {
    line(`meshd demo — everything is in ${dir}`);
    line(`1. MESH simulator on ${sim.url} (mutual TLS; CA, server and client certificates made for the demo)`);

    // Config per side: the simulator's ready-made client config plus the demo's routes.
    const configs: Record<string, string> = {};
    for (const [mb, routes] of [
      [PAS, [{ direction: 'out', match: '*.csv', to: GP, workflow: WORKFLOW, subject: 'meshd demo', transform: { from: 'csv', to: 'fhir-r4' }, ackTimeout: '1h' }]],
      [GP, [{ direction: 'in', workflow: WORKFLOW, transform: { from: 'fhir-r4', to: 'hl7v2' }, ack: true }]],
    ] as const) {
      const doc = load(readFileSync(sim.client(mb).configPath, 'utf8')) as { schedule?: object; mailboxes: Array<{ routes?: unknown }> };
      doc.schedule = { ...(doc.schedule ?? {}), settleSeconds: 0 };
      doc.mailboxes[0].routes = routes;
      configs[mb] = join(dir, `${mb}.yaml`);
      await writeFileAtomic(configs[mb], dump(doc), PRIVATE_FILE_MODE);
    }
    line(`2. configs: ${configs[PAS]} (sends CSV as FHIR R4) and ${configs[GP]} (receives FHIR as HL7 v2 and acknowledges)`);

    // Synthetic people (NHS test range), written as our CSV schema by the csv format itself.
    const out = join(sim.dir, 'mailboxes', PAS, 'out');
    await mkdir(out, { recursive: true });
    const csv = getFormat('csv');
    for (const name of ['registrations', 'appointments']) {
      const records = JSON.parse(readFileSync(join(FIXTURES, `${name}.json`), 'utf8')) as CanonicalRecord[];
      const written = csv.write!(records);
      await writeFileAtomic(join(out, `${name}.csv`), written.output); // complete files appear by rename
      line(`3. dropped ${name}.csv (${records.length} ${name}) into ${PAS}'s out/`);
    }

    const cycle = async (mb: string) => {
      const config = await loadConfig(configs[mb]);
      const daemon = await Daemon.open(config, { log, meshFor: (m) => meshPortFor(config, m.id, log) });
      try {
        return (await daemon.runOnce())[0];
      } finally {
        await daemon.stop();
      }
    };
    const sent = await cycle(PAS);
    line(`4. ${PAS} cycle: claimed ${sent.claimed}, converted CSV → FHIR R4 message Bundles, sent ${sent.sent} over MESH`);
    const got = await cycle(GP);
    line(`5. ${GP} cycle: received ${got.delivered}, converted FHIR → HL7 v2, wrote them into in/, acknowledged ${got.acknowledged}`);
    const answered = await cycle(GP);
    line(`6. ${GP} cycle: sent ${answered.sent} business acknowledgement(s) back on ${WORKFLOW}_ACK (FHIR MessageHeader.response)`);
    const confirmed = await cycle(PAS);
    // A business ACK is taken into the ledger, not delivered to in/: count what MESH was told was taken.
    line(`7. ${PAS} cycle: took in ${confirmed.acknowledged} acknowledgement(s): its sends are now confirmed, not just delivered`);
    const errors = [...sent.errors, ...got.errors, ...answered.errors, ...confirmed.errors];
    for (const e of errors) line(`   problem in ${e.stage}: ${e.message}`);

    const inDir = join(sim.dir, 'mailboxes', GP, 'in');
    const delivered = readdirSync(inDir).filter((n) => n.endsWith('.dat'));
    line(`8. ${GP}'s in/ now holds:`);
    for (const f of delivered) {
      const first = readFileSync(join(inDir, f), 'utf8').split(/\r\n|\r|\n/).slice(0, 3);
      line(`   ${f}`);
      for (const l of first) line(`     ${l.length > 100 ? l.slice(0, 100) + '…' : l}`);
    }

    line('9. the ledgers (what `meshd ledger list` shows):');
    let confirmedSends = 0;
    for (const mb of [PAS, GP]) {
      const config = await loadConfig(configs[mb]);
      const daemon = await Daemon.open(config, { log, meshFor: (m) => meshPortFor(config, m.id, log) });
      for (const r of daemon.ledger.list({ limit: 50 })) {
        line(`   ${mb} #${r.id} ${r.direction.padEnd(3)} ${r.state.padEnd(12)} ${(r.fileName ?? r.workflowId ?? '').padEnd(30)} ${r.messageId ?? ''}`);
        if (mb === PAS && r.direction === 'out' && r.state === 'confirmed') confirmedSends++;
      }
      await daemon.stop();
    }
    line(`done in ${((Date.now() - started) / 1000).toFixed(1)} s. Try: node bin/meshd.js --config ${configs[PAS]} ledger list   (or meshd …, after npm link)`);
    if (opts.keep) {
      line(`simulator still running on ${sim.url}; Ctrl-C to stop`);
      await new Promise<void>((r) => {
        process.once('SIGINT', () => r());
        process.once('SIGTERM', () => r());
      });
    }
    return errors.length === 0 && delivered.length === 2 && confirmedSends === 2 ? 0 : 1;
  } finally {
    await sim.close();
  }
}
