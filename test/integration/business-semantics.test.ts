import { expect } from 'chai';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from '../support/yaml';
import { ledgerPath, openLedger, type LedgerStore, type MessageRow } from '../../src/ledger';
import { dropFile, RECEIVER, runMeshd, SENDER, startDaemonEnv, type DaemonEnv } from './support/daemon-env';

/**
 * Issue 12 end to end: two mailboxes, the simulator over mutual TLS, real `meshd run --once`
 * processes. The sender sends HL7 v2 SIU files; the receiver converts them to FHIR on a route
 * that acknowledges (ack: true) and enforces event-time order (the default with a transform).
 */

const WF = 'TEST_WORKFLOW';
const LATE_WF = 'SIU_LATE';

/** One SIU message for appointment `appt` of a synthetic patient; MSH-7 is its event time (no EVN in SIU). */
function siu(o: { id: string; at: string; trigger?: string; appt: string; nhs?: string; note?: string }): string {
  return (
    [
      `MSH|^~\\&|PAS|RX1|EPR|Y12345|${o.at}||SIU^${o.trigger ?? 'S12'}^SIU_S12|${o.id}|P|2.4`,
      `SCH|PL-${o.appt}^RX1-PLAC|${o.appt}^RX1||||BOOK^New booking|FOLLOWUP^Follow up^HL70276||30|min|^^M30^20260714093000^20260714100000|||||C1234567^DARWIN^Sam^^^Dr^^^GMC||||C1234567^DARWIN^Sam^^^Dr^^^GMC|||||Booked`,
      `NTE|1||${o.note ?? 'Bring a list of medicines.'}`,
      `PID|1||${o.nhs ?? '9991000003'}^^^NHS^NH||O'BRIEN^Aoife||19250704|F||||||||||||||||||||||||NSTS01`,
      'RGS|1|A',
      'AIS|1|A|TO-FU^Orthopaedic follow-up^RX1-SVC|20260714093000|||30|min||Booked',
    ].join('\r') + '\r'
  );
}

describe('business semantics: duplicates, ordering and business ACKs between two daemons', function () {
  this.timeout(300_000);
  let env: DaemonEnv;

  before(async () => {
    env = await startDaemonEnv({
      workflows: [LATE_WF, 'PLAIN_TEXT'],
      mailbox: {
        [SENDER]: {
          routes: [
            { direction: 'out', match: '*.hl7', to: RECEIVER, workflow: WF, ackTimeout: '4h' },
            { direction: 'out', match: '*.late', to: RECEIVER, workflow: LATE_WF, ackTimeout: 1 },
          ],
        },
        [RECEIVER]: { routes: [{ direction: 'in', workflow: WF, transform: { from: 'hl7v2', to: 'fhir-r4' }, ack: true }] },
      },
    });
  });
  after(async () => env?.close());

  const run = async (mailbox: string, env2: Record<string, string> = {}) => {
    const r = await runMeshd(['--config', env.configPath[mailbox], 'run', '--once'], { env: env2 });
    if (r.code !== 0 && r.signal !== 'SIGKILL') console.log(r.stderr);
    return r;
  };
  /** Sender sends, receiver receives and queues ACKs, receiver sends them, sender takes them in. */
  const roundTrip = async () => {
    expect((await run(SENDER)).code, 'sender run').to.equal(0);
    expect((await run(RECEIVER)).code, 'receiver run').to.equal(0);
    expect((await run(RECEIVER)).code, 'receiver run sending ACKs').to.equal(0);
    expect((await run(SENDER)).code, 'sender run taking ACKs').to.equal(0);
  };
  const withLedger = async <T>(mailbox: string, fn: (l: LedgerStore) => T): Promise<T> => {
    const ledger = openLedger(ledgerPath((await env.config(mailbox)).dataDir));
    try {
      return fn(ledger);
    } finally {
      ledger.close();
    }
  };
  const sentRow = (l: LedgerStore, fileName: string): MessageRow => l.list({ direction: 'out', limit: 1000 }).find((r) => r.fileName === fileName)!;
  const receivedBy = (l: LedgerStore, messageId: string): MessageRow => l.findByMessageId(RECEIVER, 'in', messageId)!;
  const inFiles = () => (existsSync(env.folder(RECEIVER, 'in')) ? readdirSync(env.folder(RECEIVER, 'in')).filter((n) => n.endsWith('.dat')) : []);

  it('an ACK round trip ends confirmed at the sender', async () => {
    dropFile(env.folder(SENDER, 'out'), 'rt.hl7', siu({ id: 'RT-1', at: '20260601090000', appt: 'APPT-RT' }));
    const before = inFiles().length;
    await roundTrip();
    expect(inFiles().length).to.equal(before + 1);
    await withLedger(SENDER, (l) => {
      const row = sentRow(l, 'rt.hl7');
      expect(row.state).to.equal('confirmed');
      expect(row.businessId).to.be.a('string');
      expect(row.ackDueAt, 'ackTimeout 4h set a due time').to.be.a('string');
      const ack = l.get(row.relatedRowId!)!;
      expect(ack.direction).to.equal('in');
      expect(ack.workflowId).to.equal(`${WF}_ACK`);
      expect(ack.payloadPath, 'an ACK is consumed, not written to in/').to.equal(null);
      expect(l.events(row.id).map((e) => e.type)).to.include('business_ack');
    });
    await withLedger(RECEIVER, (l) => {
      const acks = l.list({ direction: 'out', limit: 100 });
      expect(acks.map((a) => a.workflowId)).to.deep.equal([`${WF}_ACK`]);
      expect(acks[0].state).to.be.oneOf(['sent', 'acknowledged']);
      expect(l.get(acks[0].relatedRowId!)!.state).to.equal('acknowledged');
    });
    // The sender never acknowledges an acknowledgement: nothing went back on an _ACK_ACK workflow.
    expect(env.sim.messages().filter((m) => m.workflowId.endsWith('_ACK_ACK'))).to.deep.equal([]);
  });

  it('a payload sent twice under two MESH ids is delivered once; the second is recorded duplicate', async () => {
    const body = siu({ id: 'DUP-1', at: '20260602090000', appt: 'APPT-DUP' });
    dropFile(env.folder(SENDER, 'out'), 'dup-a.hl7', body);
    dropFile(env.folder(SENDER, 'out'), 'dup-b.hl7', body);
    const before = inFiles().length;
    await roundTrip();
    expect(inFiles().length, 'one copy in in/').to.equal(before + 1);
    const ids = await withLedger(SENDER, (l) => ['dup-a.hl7', 'dup-b.hl7'].map((f) => sentRow(l, f).messageId!));
    expect(ids[0]).to.not.equal(ids[1]);
    const duplicateId = await withLedger(RECEIVER, (l) => {
      // Downloads run side by side: whichever was processed first is the first copy.
      const [a, b] = ids.map((id) => receivedBy(l, id)).sort((x, y) => (x.state === 'duplicate' ? 1 : 0) - (y.state === 'duplicate' ? 1 : 0));
      expect(a.state).to.equal('acknowledged');
      expect(b.state).to.equal('duplicate');
      expect(b.relatedRowId, 'linked to the first copy').to.equal(a.id);
      expect(b.acknowledgedAt, 'acknowledged to MESH').to.be.a('string');
      expect(l.list({ state: 'duplicate', limit: 10 }).map((r) => r.id)).to.deep.equal([b.id]);
      return b.messageId!;
    });
    // Both copies got the same (idempotent) acknowledgement, so both sends end confirmed.
    await withLedger(SENDER, (l) => {
      for (const f of ['dup-a.hl7', 'dup-b.hl7']) expect(sentRow(l, f).state, f).to.equal('confirmed');
    });
    const listed = await runMeshd(['--config', env.configPath[RECEIVER], 'ledger', 'list', '--state', 'duplicate', '--json']);
    expect((JSON.parse(listed.stdout) as { messages: MessageRow[] }).messages.map((m) => m.state)).to.deep.equal(['duplicate']);
    const shown = await runMeshd(['--config', env.configPath[RECEIVER], 'ledger', 'show', duplicateId]);
    expect(shown.stdout).to.match(/duplicate of #\d+, the first copy/);
  });

  it('the same business id with different content goes to needs_review (DUPLICATE_ID_CONFLICT)', async () => {
    dropFile(env.folder(SENDER, 'out'), 'conf-a.hl7', siu({ id: 'CONF-1', at: '20260603090000', appt: 'APPT-CONF' }));
    await run(SENDER);
    await run(RECEIVER);
    const before = inFiles().length;
    dropFile(env.folder(SENDER, 'out'), 'conf-b.hl7', siu({ id: 'CONF-1', at: '20260603090000', appt: 'APPT-CONF', note: 'Changed note.' }));
    await run(SENDER);
    await run(RECEIVER);
    expect(inFiles().length, 'nothing delivered').to.equal(before);
    const id = await withLedger(SENDER, (l) => sentRow(l, 'conf-b.hl7').messageId!);
    await withLedger(RECEIVER, (l) => {
      const row = receivedBy(l, id);
      expect(row.state).to.equal('needs_review');
      expect(row.errorCode).to.equal('DUPLICATE_ID_CONFLICT');
      expect(row.payloadPath, 'payload kept').to.be.a('string');
      expect(existsSync(row.payloadPath!)).to.equal(true);
      expect(readFileSync(`${row.payloadPath}.reason`, 'utf8')).to.match(/^DUPLICATE_ID_CONFLICT: /);
      expect(row.acknowledgedAt, 'kept, so acknowledged to MESH').to.be.a('string');
    });
    // A person decides the second one is right: `meshd ledger retry` delivers the kept payload as it is.
    const retried = await runMeshd(['--config', env.configPath[RECEIVER], 'ledger', 'retry', id]);
    expect(retried.code, retried.stderr).to.equal(0);
    await run(RECEIVER);
    expect(inFiles().length, 'delivered once decided').to.equal(before + 1);
    await withLedger(RECEIVER, (l) => expect(receivedBy(l, id).state).to.equal('acknowledged'));
  });

  it('a stale update after a newer one is kept in failed/, recorded stale, and its sender gets an error ACK', async () => {
    dropFile(env.folder(SENDER, 'out'), 'new.hl7', siu({ id: 'ORD-2', at: '20260622090000', appt: 'APPT-ORD', trigger: 'S15' }));
    await roundTrip();
    dropFile(env.folder(SENDER, 'out'), 'old.hl7', siu({ id: 'ORD-1', at: '20260621090000', appt: 'APPT-ORD' }));
    const before = inFiles().length;
    await roundTrip();
    expect(inFiles().length, 'the old booking never reaches in/').to.equal(before);
    const [newId, oldId] = await withLedger(SENDER, (l) => ['new.hl7', 'old.hl7'].map((f) => sentRow(l, f).messageId!));
    await withLedger(RECEIVER, (l) => {
      const stale = receivedBy(l, oldId);
      expect(stale.state).to.equal('stale');
      expect(stale.relatedRowId, 'names the newer event').to.equal(receivedBy(l, newId).id);
      expect(stale.payloadPath!.startsWith(env.folder(RECEIVER, 'failed'))).to.equal(true);
      const reason = readFileSync(`${stale.payloadPath}.reason`, 'utf8');
      expect(reason).to.match(/^STALE_EVENT: .*older than one of 2026-06-22T\d\d:00:00\.000Z/);
      expect(reason, 'no patient values in the reason').to.not.match(/9991000003|O'BRIEN/);
    });
    await withLedger(SENDER, (l) => {
      expect(sentRow(l, 'new.hl7').state).to.equal('confirmed');
      const old = sentRow(l, 'old.hl7');
      expect(old.state).to.equal('rejected');
      expect(old.errorCode).to.equal('ACK_REJECTED');
      expect(old.errorText).to.match(/STALE_EVENT/);
    });
  });

  it('an invalid payload ends rejected at the sender', async () => {
    // An NHS number that fails its Modulus 11 check: the receiving route refuses the message.
    dropFile(env.folder(SENDER, 'out'), 'bad.hl7', siu({ id: 'BAD-1', at: '20260604090000', appt: 'APPT-BAD', nhs: '9991000004' }));
    await roundTrip();
    const id = await withLedger(SENDER, (l) => {
      const row = sentRow(l, 'bad.hl7');
      expect(row.state).to.equal('rejected');
      expect(row.errorText, 'the reason names the field, never its value').to.not.include('9991000004');
      return row.messageId!;
    });
    await withLedger(RECEIVER, (l) => expect(receivedBy(l, id).state).to.equal('quarantined'));
  });

  it('an overdue ACK raises ACK_OVERDUE', async () => {
    // LATE_WF has no inbound route at the receiver that acknowledges, and a 1-second ackTimeout.
    dropFile(env.folder(SENDER, 'out'), 'late.late', siu({ id: 'LATE-1', at: '20260605090000', appt: 'APPT-LATE' }));
    await run(SENDER);
    await new Promise((r) => setTimeout(r, 1500));
    const second = await run(SENDER);
    const events = second.stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { event: string; code?: string });
    expect(events.filter((e) => e.event === 'ACK_OVERDUE').map((e) => e.code)).to.deep.equal(['ACK_OVERDUE']);
    await withLedger(SENDER, (l) => {
      const row = sentRow(l, 'late.late');
      expect(row.errorCode).to.equal('ACK_OVERDUE');
      expect(l.events(row.id).filter((e) => e.type === 'ack_overdue')).to.have.length(1);
    });
    // Raised once: a later cycle does not raise it again.
    const third = await run(SENDER);
    expect(third.stderr).to.not.include('"event":"ACK_OVERDUE"');
    const status = await runMeshd(['--config', env.configPath[SENDER], 'status']);
    expect(status.stdout).to.match(/1 sent message\(s\) with a business acknowledgement overdue/);
  });

  it('SIGKILL during ACK sending still sends each ACK exactly once', async () => {
    const N = 12;
    for (let i = 0; i < N; i++) dropFile(env.folder(SENDER, 'out'), `kill-${i}.hl7`, siu({ id: `KILL-${i}`, at: '20260606090000', appt: `APPT-KILL-${i}` }));
    expect((await run(SENDER)).code).to.equal(0);
    const originals = await withLedger(SENDER, (l) => l.list({ direction: 'out', limit: 1000 }).filter((r) => r.fileName?.startsWith('kill-')).map((r) => r.messageId!));
    expect(originals).to.have.length(N);
    // The receiver is killed at seeded ledger writes again and again: receiving, queueing and sending ACKs.
    let kills = 0;
    for (let k = 0; k < 40 && kills < 12; k++) {
      const r = await run(RECEIVER, { MESHD_TEST_CRASH_AFTER_WRITES: String(3 + ((k * 7) % 23)) });
      if (r.signal === 'SIGKILL') kills++;
    }
    for (let i = 0; i < 4; i++) expect((await run(RECEIVER)).code, 'clean runs finish the work').to.equal(0);
    expect(kills).to.be.at.least(6);
    // In MESH: one acknowledgement (an HL7 ACK, as the originals are HL7) per original, or (a POST cut off mid-flight) none and the ACK parked for review.
    const ackFiles = env.sim.messages().filter((m) => m.workflowId === `${WF}_ACK` && m.sender === RECEIVER && originals.some((id) => m.fileName === `${id}.ack.hl7`));
    const perOriginal = new Map<string, number>();
    for (const m of ackFiles) perOriginal.set(m.fileName!, (perOriginal.get(m.fileName!) ?? 0) + 1);
    expect([...perOriginal.values()].filter((n) => n > 1), 'no ACK sent twice').to.deep.equal([]);
    await withLedger(RECEIVER, (l) => {
      const acks = l.list({ direction: 'out', limit: 1000 }).filter((r) => originals.some((id) => r.fileName === `${id}.ack.hl7`));
      const byFile = new Map<string, number>();
      for (const a of acks) byFile.set(a.fileName!, (byFile.get(a.fileName!) ?? 0) + 1);
      expect([...byFile.values()].filter((n) => n > 1), 'each ACK queued once').to.deep.equal([]);
      for (const id of originals) {
        const row = receivedBy(l, id);
        expect(row.state, id).to.be.oneOf(['acknowledged', 'quarantined']);
        if (row.state === 'quarantined') continue; // set aside as POISON after two stops: no ACK promised
        const ack = acks.find((a) => a.fileName === `${id}.ack.hl7`);
        expect(ack, `${id} has its ACK`).to.not.equal(undefined);
        expect(ack!.state, `${id} ACK sent, or parked if its POST was cut off`).to.be.oneOf(['sent', 'acknowledged', 'needs_review']);
        if (ack!.state !== 'needs_review') expect(perOriginal.get(`${id}.ack.hl7`), `${id} in MESH once`).to.equal(1);
      }
    });
  });

  it('with deliverAcks on an inbound route for the _ACK workflow, an acknowledgement is linked and also written to in/', async () => {
    const doc = parse(readFileSync(env.configPath[SENDER], 'utf8'));
    doc.mailboxes[0].routes.push({ direction: 'in', workflow: `${WF}_ACK`, deliverAcks: true });
    writeFileSync(env.configPath[SENDER], stringify(doc));
    const senderIn = env.folder(SENDER, 'in');
    dropFile(env.folder(SENDER, 'out'), 'keep-ack.hl7', siu({ id: 'KEEP-1', at: '20260607090000', appt: 'APPT-KEEP' }));
    await roundTrip();
    await withLedger(SENDER, (l) => {
      const row = sentRow(l, 'keep-ack.hl7');
      expect(row.state).to.equal('confirmed');
      const ack = l.get(row.relatedRowId!)!;
      expect(ack.payloadPath, 'the acknowledgement is in in/ as well').to.equal(join(senderIn, `${ack.messageId}.dat`));
      expect(readFileSync(ack.payloadPath!, 'latin1')).to.match(/^MSH\|.*\rMSA\|AA\|KEEP-1/s);
    });
  });

  it('copies of a payload nothing parses, arriving in one poll and placed side by side, are delivered once', async () => {
    const doc = parse(readFileSync(env.configPath[SENDER], 'utf8'));
    doc.mailboxes[0].routes.push({ direction: 'out', match: '*.txt', to: RECEIVER, workflow: 'PLAIN_TEXT' });
    writeFileSync(env.configPath[SENDER], stringify(doc));
    const copies = ['plain-a.txt', 'plain-b.txt', 'plain-c.txt'];
    for (const f of copies) dropFile(env.folder(SENDER, 'out'), f, 'synthetic plain text, no format\n');
    dropFile(env.folder(SENDER, 'out'), 'plain-other.txt', 'other synthetic text\n');
    const before = inFiles().length;
    await roundTrip();
    expect(inFiles().length, 'one copy and the other text in in/').to.equal(before + 2);
    const ids = await withLedger(SENDER, (l) => [...copies, 'plain-other.txt'].map((f) => sentRow(l, f).messageId!));
    await withLedger(RECEIVER, (l) => {
      const rows = ids.slice(0, 3).map((id) => receivedBy(l, id));
      const first = rows.filter((r) => r.state === 'acknowledged');
      expect(first, 'exactly one copy delivered').to.have.length(1);
      const others = rows.filter((r) => r !== first[0]);
      expect(others.map((r) => [r.state, r.relatedRowId])).to.deep.equal([
        ['duplicate', first[0].id],
        ['duplicate', first[0].id],
      ]);
      expect(readFileSync(first[0].payloadPath!, 'utf8')).to.equal('synthetic plain text, no format\n');
      expect(receivedBy(l, ids[3]).state).to.equal('acknowledged');
    });
  });
});
