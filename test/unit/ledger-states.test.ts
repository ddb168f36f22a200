import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import {
  ALL_STATES,
  DIRECTIONS,
  INITIAL_STATES,
  MessageState,
  TRANSITIONS,
  canTransition,
  openLedger,
  statesFor,
  type Direction,
  type SqliteLedger,
} from '../../src/ledger';
import { MeshdError } from '../../src/errors';

/** Shortest path of legal moves from a start state to `target`, or undefined. */
function pathTo(direction: Direction, target: MessageState): MessageState[] | undefined {
  const queue: MessageState[][] = INITIAL_STATES[direction].map((s) => [s]);
  const seen = new Set<MessageState>();
  while (queue.length) {
    const p = queue.shift()!;
    const last = p[p.length - 1];
    if (last === target) return p;
    if (seen.has(last)) continue;
    seen.add(last);
    for (const next of TRANSITIONS[direction][last] ?? []) queue.push([...p, next]);
  }
  return undefined;
}

describe('ledger states', () => {
  let dir: string;
  let ledger: SqliteLedger;

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshd-ledger-states-'));
    ledger = openLedger(path.join(dir, 'meshd.db'), { now: () => new Date('2026-11-01T09:00:00Z') });
  });
  afterEach(() => {
    ledger.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  function rowIn(direction: Direction, state: MessageState): number {
    const route = pathTo(direction, state);
    expect(route, `${direction} ${state} must be reachable`).to.not.equal(undefined);
    const row = ledger.insertMessage({ direction, mailbox: 'X26ABC1', state: route![0] });
    for (const next of route!.slice(1)) ledger.transition(row.id, next);
    expect(ledger.get(row.id)!.state).to.equal(state);
    return row.id;
  }

  it('uses the documented state names', () => {
    expect(ALL_STATES).to.have.members([
      'claiming',
      'queued',
      'uploading',
      'needs_review',
      'sent',
      'acknowledged',
      'undeliverable',
      'failed',
      'receiving',
      'delivered',
      'quarantined',
      'confirmed',
      'rejected',
      'duplicate',
      'stale',
    ]);
  });

  it('reaches every state of each direction from a start state', () => {
    for (const direction of DIRECTIONS) {
      for (const state of statesFor(direction)) expect(pathTo(direction, state), `${direction} ${state}`).to.not.equal(undefined);
    }
  });

  it('keeps outbound and inbound states apart (only needs_review and acknowledged are shared)', () => {
    const shared = statesFor('out').filter((s) => statesFor('in').includes(s));
    expect(shared).to.deep.equal([MessageState.NeedsReview, MessageState.Acknowledged]);
  });

  it('never lets a needs_review row be sent again without passing through a decision', () => {
    expect(canTransition('out', MessageState.NeedsReview, MessageState.Uploading)).to.equal(false);
    expect(TRANSITIONS.out[MessageState.NeedsReview]).to.not.include(MessageState.Uploading);
  });

  it('performs every legal transition and records it as an event', () => {
    let moves = 0;
    for (const direction of DIRECTIONS) {
      for (const [from, tos] of Object.entries(TRANSITIONS[direction])) {
        for (const to of tos ?? []) {
          const id = rowIn(direction, from as MessageState);
          const moved = ledger.transition(id, to, { event: { type: 'test_move', detail: { n: moves } } });
          expect(moved.state).to.equal(to);
          const last = ledger.events(id).at(-1)!;
          expect(last).to.include({ type: 'test_move', fromState: from, toState: to });
          expect(last.detail).to.deep.equal({ n: moves });
          moves++;
        }
      }
    }
    expect(moves).to.be.greaterThan(15);
  });

  it('refuses every illegal transition with LEDGER_CONFLICT and leaves the row unchanged', () => {
    let refusals = 0;
    for (const direction of DIRECTIONS) {
      for (const from of statesFor(direction)) {
        for (const to of ALL_STATES) {
          if (canTransition(direction, from, to)) continue;
          const id = rowIn(direction, from);
          const before = ledger.get(id)!;
          const eventsBefore = ledger.events(id).length;
          let caught: unknown;
          try {
            ledger.transition(id, to);
          } catch (err) {
            caught = err;
          }
          expect(caught, `${direction} ${from}→${to}`).to.be.instanceOf(MeshdError);
          expect((caught as MeshdError).code).to.equal('LEDGER_CONFLICT');
          expect(ledger.get(id)).to.deep.equal(before);
          expect(ledger.events(id)).to.have.length(eventsBefore);
          refusals++;
        }
      }
    }
    expect(refusals).to.be.greaterThan(50);
  });

  it('refuses a legal move when the row is not in the caller’s expected state', () => {
    const id = rowIn('out', MessageState.Failed);
    expect(() => ledger.transition(id, MessageState.Queued, { from: [MessageState.Undeliverable] }))
      .to.throw(MeshdError)
      .with.property('code', 'LEDGER_CONFLICT');
    expect(ledger.get(id)!.state).to.equal(MessageState.Failed);
  });

  it('refuses a new row in a state that is not a start state', () => {
    expect(() => ledger.insertMessage({ direction: 'out', mailbox: 'X26ABC1', state: MessageState.Sent }))
      .to.throw(MeshdError)
      .with.property('code', 'LEDGER_INVALID_STATE');
    expect(() => ledger.insertMessage({ direction: 'in', mailbox: 'X26ABC1', state: MessageState.Queued }))
      .to.throw(MeshdError)
      .with.property('code', 'LEDGER_INVALID_STATE');
  });

  it('throws LEDGER_NOT_FOUND for an unknown row', () => {
    expect(() => ledger.transition(999, MessageState.Queued)).to.throw(MeshdError).with.property('code', 'LEDGER_NOT_FOUND');
  });

  it('stamps acknowledged_at when a row is acknowledged', () => {
    const id = rowIn('in', MessageState.Delivered);
    expect(ledger.get(id)!.acknowledgedAt).to.equal(null);
    expect(ledger.transition(id, MessageState.Acknowledged).acknowledgedAt).to.equal('2026-11-01T09:00:00.000Z');
  });
});
