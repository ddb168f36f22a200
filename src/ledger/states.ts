/**
 * The closed set of message states and the only moves allowed between them.
 * JSON output, the database and docs/ledger.md all use these names.
 */

export const MessageState = {
  // outbound
  /** Intent recorded; the file is being moved out of out/ into the spool. */
  Claiming: 'claiming',
  /** Payload is in the spool, waiting for (another) upload attempt. */
  Queued: 'queued',
  /** Claimed by a sender; message_id is recorded once the first POST is accepted, then chunks advance. */
  Uploading: 'uploading',
  /** The first POST's outcome is unknown: payload kept, never resent without a person deciding. */
  NeedsReview: 'needs_review',
  /** Every chunk accepted by MESH. */
  Sent: 'sent',
  /** Outbound: the recipient acknowledged (tracking). Inbound: we acknowledged to MESH. */
  Acknowledged: 'acknowledged',
  /** The receiving system acknowledged it (business ACK, positive): it was accepted, not just delivered. */
  Confirmed: 'confirmed',
  /** The receiving system refused it (business ACK, negative); the reason is kept. */
  Rejected: 'rejected',
  /** A REPORT or tracking said the message will not be delivered. */
  Undeliverable: 'undeliverable',
  /** Refused by MESH, invalid input, transform failure, or resolved as failed; payload in failed/. */
  Failed: 'failed',
  // inbound
  /** Listed in the inbox; download (or reprocessing) in progress. */
  Receiving: 'receiving',
  /** Durably written to in/, not yet acknowledged to MESH. */
  Delivered: 'delivered',
  /** Payload unusable (transform failure, size cap): kept in failed/ with its reason. */
  Quarantined: 'quarantined',
  /** The same message again (same business id and content): acknowledged, not delivered twice; linked to the first copy. */
  Duplicate: 'duplicate',
  /** Older than an event already received for the same appointment or patient: kept in failed/, never delivered as current. */
  Stale: 'stale',
} as const;
export type MessageState = (typeof MessageState)[keyof typeof MessageState];

export type Direction = 'out' | 'in';
export const DIRECTIONS: readonly Direction[] = ['out', 'in'];

const S = MessageState;

/** Legal moves per direction: from → allowed targets. Anything not listed is refused. */
export const TRANSITIONS: Readonly<Record<Direction, Readonly<Partial<Record<MessageState, readonly MessageState[]>>>>> = {
  out: {
    [S.Claiming]: [S.Queued, S.Failed],
    // queued → sent: a single-chunk message is complete when its first POST is accepted.
    [S.Queued]: [S.Uploading, S.Sent, S.NeedsReview, S.Failed],
    // uploading → queued: a failure known to have happened before MESH saw the message (retry later).
    [S.Uploading]: [S.Sent, S.NeedsReview, S.Failed, S.Queued],
    // Only a person (meshd ledger resolve) or the `resend` policy moves a row out of review.
    [S.NeedsReview]: [S.Sent, S.Failed, S.Queued],
    // A business ACK may come before or after MESH's own acknowledgement (tracking).
    [S.Sent]: [S.Acknowledged, S.Undeliverable, S.Confirmed, S.Rejected],
    [S.Acknowledged]: [S.Confirmed, S.Rejected],
    [S.Undeliverable]: [S.Queued],
    [S.Failed]: [S.Queued],
  },
  in: {
    // needs_review: the same business id with other content, or an equal event time with other content.
    [S.Receiving]: [S.Delivered, S.Quarantined, S.Duplicate, S.Stale, S.NeedsReview],
    [S.Delivered]: [S.Acknowledged],
    // quarantined → receiving: an operator retry reprocesses the kept payload.
    // → receiving: an operator retry; from needs_review and stale it delivers what a person decided on.
    [S.Quarantined]: [S.Receiving],
    [S.NeedsReview]: [S.Receiving],
    [S.Stale]: [S.Receiving],
  },
};

/**
 * Recovery marks: facts a restart needs that are not states of their own. Each is allowed only
 * in the states listed; a transition clears it unless it sets one for the new state.
 * - post_in_flight: the first POST of a queued row may be on the wire; found after a restart, its
 *   outcome is unknown.
 * - filing: the row's files are being moved out of the spool to the payload path recorded.
 */
export type RecoveryMark = 'post_in_flight' | 'filing';
export const RECOVERY_MARKS: readonly RecoveryMark[] = ['post_in_flight', 'filing'];

export const MARKS: Readonly<Record<Direction, Readonly<Partial<Record<MessageState, readonly RecoveryMark[]>>>>> = {
  out: {
    [S.Queued]: ['post_in_flight'],
    [S.Sent]: ['filing'],
    [S.Failed]: ['filing'],
  },
  in: {},
};

export function canMark(direction: Direction, state: MessageState, mark: RecoveryMark | null): boolean {
  return mark === null || (MARKS[direction][state]?.includes(mark) ?? false);
}

/** States a new row may start in. */
export const INITIAL_STATES: Readonly<Record<Direction, readonly MessageState[]>> = {
  out: [S.Claiming, S.Queued, S.Failed],
  // REPORTs are stored already delivered; a payload refused before download starts quarantined.
  in: [S.Receiving, S.Delivered, S.Quarantined],
};

/** States in which nothing automatic will move the row again: rows may be purged by age. */
export const SETTLED_STATES: readonly MessageState[] = [S.Acknowledged, S.Undeliverable, S.Failed, S.Quarantined, S.Confirmed, S.Rejected, S.Duplicate, S.Stale];

/**
 * Rows whose payload copy (sent/ or failed/) the daemon no longer needs, so retention may delete it.
 * Inbound delivered/acknowledged payloads live in in/ and belong to the receiving application: never ours to delete.
 */
export const PAYLOAD_PURGE_STATES: Readonly<Record<Direction, readonly MessageState[]>> = {
  out: [S.Sent, S.Acknowledged, S.Undeliverable, S.Failed, S.Confirmed, S.Rejected],
  in: [S.Quarantined],
};

/**
 * The payload states a purge of rows clears on their own: a settled row it deletes hands back its
 * payload with it, so clearing (and recording) that payload first would be work thrown away.
 */
export function payloadStatesToClear(payloadsOnly: boolean): Record<Direction, MessageState[]> {
  const keep = (states: readonly MessageState[]) => states.filter((s) => payloadsOnly || !SETTLED_STATES.includes(s));
  return { out: keep(PAYLOAD_PURGE_STATES.out), in: keep(PAYLOAD_PURGE_STATES.in) };
}

export const ALL_STATES: readonly MessageState[] = Object.values(MessageState);

export function isMessageState(value: unknown): value is MessageState {
  return typeof value === 'string' && (ALL_STATES as readonly string[]).includes(value);
}

/** States that belong to a direction (acknowledged and needs_review belong to both). */
export function statesFor(direction: Direction): MessageState[] {
  const table = TRANSITIONS[direction];
  const set = new Set<MessageState>(INITIAL_STATES[direction]);
  for (const [from, tos] of Object.entries(table)) {
    set.add(from as MessageState);
    for (const to of tos ?? []) set.add(to);
  }
  return ALL_STATES.filter((s) => set.has(s));
}

export function canTransition(direction: Direction, from: MessageState, to: MessageState): boolean {
  return TRANSITIONS[direction][from]?.includes(to) ?? false;
}

/** The states a row of this direction may be in to move to `to`. */
export function predecessors(direction: Direction, to: MessageState): MessageState[] {
  return ALL_STATES.filter((from) => canTransition(direction, from, to));
}
