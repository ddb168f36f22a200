/** The ledger: SQLite store of every message, its state and its history. See docs/ledger.md. */
export {
  MessageState,
  type Direction,
  DIRECTIONS,
  TRANSITIONS,
  INITIAL_STATES,
  SETTLED_STATES,
  PAYLOAD_PURGE_STATES,
  ALL_STATES,
  isMessageState,
  statesFor,
  canTransition,
  predecessors,
} from './states';
export type {
  Instant,
  MessageType,
  MessageRow,
  MessagePatch,
  NewMessage,
  EventRow,
  EventInput,
  TransitionOptions,
  AppointmentEventRecord,
  AppointmentRecord,
  AppointmentInput,
  MailboxStatus,
  MailboxStatusPatch,
  ListFilter,
  LatestEvent,
  EarlierCopyQuery,
  BrowseFilter,
  ThroughputUnit,
  ThroughputRow,
  PurgeOptions,
  PurgeResult,
  LedgerStore,
  ReceivedRow,
  SendableRow,
} from './types';
export { receivedRow, sendableRow } from './rules';
export { SqliteLedger, openLedger, ledgerPath, newClaimId, purgeInSteps, type LedgerOptions } from './sqlite-ledger';
export { MIGRATIONS, SCHEMA_VERSION, runMigrations, type Migration } from './schema';
export { BUSY_TIMEOUT_MS } from './open';
export { groupCommit } from './group-commit';
export { retryMessage, resolveReview, companionFiles, deletePurgedFiles, DECIDED_BY_PERSON, type ResolveAs, type OperatorVia } from './operator';
export { parseSince, parseAge } from './periods';
export { openStore, requireSqlite, type LedgerChoice } from './open-store';
