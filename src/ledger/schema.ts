import type Database from 'better-sqlite3';
import { MeshdError } from '../errors';

/**
 * Forward-only schema migrations. Each runs in its own transaction together with the
 * schema_version row that records it. A shipped migration is never edited: append a new one.
 */
export interface Migration {
  version: number;
  sql: string;
  /**
   * The migration rebuilds a table others reference: run it with foreign keys off (they cannot
   * be switched inside a transaction), then check every reference before committing. This is
   * SQLite's documented procedure for changes ALTER TABLE cannot make.
   */
  rebuildsTable?: boolean;
}

const MESSAGE_COLUMNS_V1 = `id, direction, mailbox, peer, workflow_id, message_id, local_id, subject, message_type, file_name,
  payload_path, ctl_path, size_bytes, sha256, chunk_size, chunks_total, chunks_done, compress, transform, attempts,
  next_attempt_at, error_code, error_text, linked_message_id, report_code, state, created_at, updated_at, acknowledged_at`;

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    sql: `
      CREATE TABLE messages (
        id                INTEGER PRIMARY KEY,
        direction         TEXT    NOT NULL CHECK (direction IN ('out', 'in')),
        mailbox           TEXT    NOT NULL,
        peer              TEXT,
        workflow_id       TEXT,
        message_id        TEXT,
        local_id          TEXT,
        subject           TEXT,
        message_type      TEXT    NOT NULL DEFAULT 'DATA' CHECK (message_type IN ('DATA', 'REPORT')),
        file_name         TEXT,
        payload_path      TEXT,
        ctl_path          TEXT,
        size_bytes        INTEGER,
        sha256            TEXT,
        chunk_size        INTEGER,
        chunks_total      INTEGER,
        chunks_done       INTEGER NOT NULL DEFAULT 0,
        compress          INTEGER NOT NULL DEFAULT 0 CHECK (compress IN (0, 1)),
        transform         TEXT,
        attempts          INTEGER NOT NULL DEFAULT 0,
        next_attempt_at   TEXT,
        error_code        TEXT,
        error_text        TEXT,
        linked_message_id TEXT,
        report_code       TEXT,
        -- Checked against the transition table in code; a CHECK here would force a table rebuild per new state.
        state             TEXT    NOT NULL,
        created_at        TEXT    NOT NULL,
        updated_at        TEXT    NOT NULL,
        acknowledged_at   TEXT
      ) STRICT;

      -- One row per MESH message per mailbox and direction: a re-listed inbox message is found, never duplicated.
      CREATE UNIQUE INDEX messages_mailbox_direction_message_id
        ON messages (mailbox, direction, message_id) WHERE message_id IS NOT NULL;
      -- findByRef / REPORT linking look a MESH id up without knowing the mailbox.
      CREATE INDEX messages_message_id ON messages (message_id) WHERE message_id IS NOT NULL;
      -- due(), claim() and countsByState() scan one mailbox's rows in a few states, in due order.
      CREATE INDEX messages_work ON messages (mailbox, direction, state, next_attempt_at);
      -- purge selects settled rows by age.
      CREATE INDEX messages_state_updated ON messages (state, updated_at);
      -- list --since and export read a time window.
      CREATE INDEX messages_created ON messages (created_at);

      CREATE TABLE events (
        id             INTEGER PRIMARY KEY,
        message_row_id INTEGER NOT NULL REFERENCES messages (id),
        at             TEXT    NOT NULL,
        type           TEXT    NOT NULL,
        from_state     TEXT,
        to_state       TEXT,
        detail         TEXT CHECK (detail IS NULL OR json_valid(detail))
      ) STRICT;

      -- show <id> reads one message's history in order; purge deletes it.
      CREATE INDEX events_message ON events (message_row_id, id);

      -- Set to 1 only inside the purge transaction (other connections never see it): the one path allowed to delete events.
      CREATE TABLE purge_guard (
        id     INTEGER PRIMARY KEY CHECK (id = 1),
        active INTEGER NOT NULL CHECK (active IN (0, 1))
      ) STRICT;
      INSERT INTO purge_guard (id, active) VALUES (1, 0);

      -- The audit trail is append-only: enforced in the database so no code path, present or future, can rewrite it.
      CREATE TRIGGER events_no_update BEFORE UPDATE ON events
      BEGIN
        SELECT RAISE(ABORT, 'events are append-only');
      END;
      CREATE TRIGGER events_no_delete BEFORE DELETE ON events
      WHEN (SELECT active FROM purge_guard WHERE id = 1) IS NOT 1
      BEGIN
        SELECT RAISE(ABORT, 'events are append-only (only retention purge deletes them)');
      END;

      CREATE TABLE appointments (
        appointment_key TEXT    NOT NULL,
        direction       TEXT    NOT NULL CHECK (direction IN ('out', 'in')),
        event_kind      TEXT    NOT NULL,
        trigger_event   TEXT,
        start_at        TEXT,
        status          TEXT,
        at              TEXT    NOT NULL,
        message_row_id  INTEGER REFERENCES messages (id) ON DELETE SET NULL,
        PRIMARY KEY (appointment_key, direction)
      ) STRICT;

      -- purge drops appointment memories older than row retention.
      CREATE INDEX appointments_at ON appointments (at);

      CREATE TABLE mailbox_status (
        mailbox           TEXT PRIMARY KEY,
        last_poll_at      TEXT,
        last_poll_ok      INTEGER CHECK (last_poll_ok IN (0, 1)),
        last_poll_error   TEXT,
        last_handshake_at TEXT,
        last_tracking_at  TEXT
      ) STRICT;
    `,
  },
  {
    version: 2,
    rebuildsTable: true,
    // Row ids are never reused (AUTOINCREMENT), so nothing named after a row id can be mistaken
    // for a later row's. Spool and temp files are named by claim_id, a random id per claim.
    // source_mtime_ms records the claimed file's mtime, to notice a writer still writing.
    // processing_starts counts conversions/deliveries begun and not finished: a message that
    // killed the process twice is quarantined as POISON instead of killing it again.
    sql: `
      CREATE TABLE messages_v2 (
        id                INTEGER PRIMARY KEY AUTOINCREMENT,
        direction         TEXT    NOT NULL CHECK (direction IN ('out', 'in')),
        mailbox           TEXT    NOT NULL,
        peer              TEXT,
        workflow_id       TEXT,
        message_id        TEXT,
        local_id          TEXT,
        subject           TEXT,
        message_type      TEXT    NOT NULL DEFAULT 'DATA' CHECK (message_type IN ('DATA', 'REPORT')),
        file_name         TEXT,
        payload_path      TEXT,
        ctl_path          TEXT,
        size_bytes        INTEGER,
        sha256            TEXT,
        chunk_size        INTEGER,
        chunks_total      INTEGER,
        chunks_done       INTEGER NOT NULL DEFAULT 0,
        compress          INTEGER NOT NULL DEFAULT 0 CHECK (compress IN (0, 1)),
        transform         TEXT,
        attempts          INTEGER NOT NULL DEFAULT 0,
        next_attempt_at   TEXT,
        error_code        TEXT,
        error_text        TEXT,
        linked_message_id TEXT,
        report_code       TEXT,
        state             TEXT    NOT NULL,
        created_at        TEXT    NOT NULL,
        updated_at        TEXT    NOT NULL,
        acknowledged_at   TEXT,
        claim_id          TEXT    CHECK (claim_id IS NULL OR (length(claim_id) = 32 AND claim_id NOT GLOB '*[^0-9a-f]*')),
        source_mtime_ms   REAL,
        processing_starts INTEGER NOT NULL DEFAULT 0
      ) STRICT;
      INSERT INTO messages_v2 (${MESSAGE_COLUMNS_V1}, claim_id) SELECT ${MESSAGE_COLUMNS_V1}, lower(hex(randomblob(16))) FROM messages;
      DROP TABLE messages;
      ALTER TABLE messages_v2 RENAME TO messages;

      CREATE UNIQUE INDEX messages_mailbox_direction_message_id
        ON messages (mailbox, direction, message_id) WHERE message_id IS NOT NULL;
      CREATE INDEX messages_message_id ON messages (message_id) WHERE message_id IS NOT NULL;
      CREATE INDEX messages_work ON messages (mailbox, direction, state, next_attempt_at);
      CREATE INDEX messages_state_updated ON messages (state, updated_at);
      CREATE INDEX messages_created ON messages (created_at);
      -- Start-up reconciliation finds the row that owns a spool or temp file by its claim id.
      CREATE UNIQUE INDEX messages_claim_id ON messages (claim_id) WHERE claim_id IS NOT NULL;
    `,
  },
  {
    version: 3,
    // What recovery needs moves out of the error columns into one closed, checked column that only
    // transitions and setMark() change. The two codes for one unknown send outcome become one.
    sql: `
      ALTER TABLE messages ADD COLUMN recovery_mark TEXT CHECK (recovery_mark IS NULL OR recovery_mark IN ('post_in_flight', 'filing'));
      UPDATE messages SET recovery_mark = 'post_in_flight', error_code = NULL WHERE error_code = 'POST_IN_FLIGHT';
      UPDATE messages SET recovery_mark = 'filing', error_code = NULL WHERE error_code = 'FILING';
      UPDATE messages SET recovery_mark = 'filing', error_text = substr(error_text, 10) WHERE error_text LIKE '[filing] %';
      UPDATE messages SET error_code = 'MESH_SEND_AMBIGUOUS' WHERE error_code = 'MESH_AMBIGUOUS';
    `,
  },
  {
    version: 4,
    // The web console (docs/ui.md) browses newest first by state and workflow, looks local ids
    // and REPORT links up exactly, searches file names (scanning this index, not the table),
    // and charts moves into sent/delivered/failed by time.
    sql: `
      CREATE INDEX messages_state ON messages (state);
      CREATE INDEX messages_workflow ON messages (workflow_id) WHERE workflow_id IS NOT NULL;
      CREATE INDEX messages_local_id ON messages (local_id) WHERE local_id IS NOT NULL;
      CREATE INDEX messages_linked ON messages (linked_message_id) WHERE linked_message_id IS NOT NULL;
      CREATE INDEX messages_file_name ON messages (file_name) WHERE file_name IS NOT NULL;
      CREATE INDEX events_to_state_at ON events (to_state, at) WHERE to_state IS NOT NULL;
    `,
  },
  {
    version: 5,
    // A big ledger (docs/performance.md). message_counts keeps the number of rows per mailbox,
    // direction and state, kept by triggers inside the same transaction as the change, so
    // `meshd status` reads a few rows instead of counting a million. messages_age finds the
    // oldest row waiting in a state without sorting them all; messages_payload_age is retention's. integrity_checks records when the
    // last full PRAGMA integrity_check passed (src/ledger/open.ts: writers check once a day).
    sql: `
      CREATE TABLE message_counts (
        mailbox   TEXT    NOT NULL,
        direction TEXT    NOT NULL,
        state     TEXT    NOT NULL,
        n         INTEGER NOT NULL,
        PRIMARY KEY (mailbox, direction, state)
      ) STRICT;
      INSERT INTO message_counts (mailbox, direction, state, n)
        SELECT mailbox, direction, state, COUNT(*) FROM messages GROUP BY mailbox, direction, state;
      CREATE TRIGGER message_counts_insert AFTER INSERT ON messages
      BEGIN
        INSERT INTO message_counts (mailbox, direction, state, n) VALUES (NEW.mailbox, NEW.direction, NEW.state, 1)
          ON CONFLICT (mailbox, direction, state) DO UPDATE SET n = n + 1;
      END;
      CREATE TRIGGER message_counts_delete AFTER DELETE ON messages
      BEGIN
        UPDATE message_counts SET n = n - 1 WHERE mailbox = OLD.mailbox AND direction = OLD.direction AND state = OLD.state;
      END;
      CREATE TRIGGER message_counts_update AFTER UPDATE OF mailbox, direction, state ON messages
      WHEN OLD.mailbox IS NOT NEW.mailbox OR OLD.direction IS NOT NEW.direction OR OLD.state IS NOT NEW.state
      BEGIN
        UPDATE message_counts SET n = n - 1 WHERE mailbox = OLD.mailbox AND direction = OLD.direction AND state = OLD.state;
        INSERT INTO message_counts (mailbox, direction, state, n) VALUES (NEW.mailbox, NEW.direction, NEW.state, 1)
          ON CONFLICT (mailbox, direction, state) DO UPDATE SET n = n + 1;
      END;

      CREATE INDEX messages_age ON messages (mailbox, direction, state, created_at);
      -- Retention finds payload copies it may delete without reading rows that have none left, nor
      -- inbound rows, whose files in in/ belong to the receiving system (PAYLOAD_PURGE_STATES).
      CREATE INDEX messages_payload_age ON messages (updated_at)
        WHERE (payload_path IS NOT NULL OR ctl_path IS NOT NULL) AND (direction = 'out' OR state = 'quarantined');
      -- Deleting a message sets its appointments' link to NULL (ON DELETE SET NULL): found by index, not by a scan per row.
      CREATE INDEX appointments_message ON appointments (message_row_id);

      CREATE TABLE integrity_checks (
        id         INTEGER PRIMARY KEY CHECK (id = 1),
        last_ok_at TEXT    NOT NULL
      ) STRICT;
    `,
  },
  {
    version: 6,
    // What a message means (docs/ledger.md, "Business semantics"): its business id and event time,
    // the received payload's own hash (an inbound row's sha256 is of what went into in/, which a
    // conversion changes), a link to a related row (the first copy of a duplicate, the newer event
    // that made one stale, the acknowledgement of a send), and when a business ACK falls due.
    // latest_events keeps, per sender and appointment or patient key, the newest event time seen;
    // message_keys lists an outbound row's keys so a later event waits for an earlier one.
    sql: `
      ALTER TABLE messages ADD COLUMN business_id TEXT;
      ALTER TABLE messages ADD COLUMN event_time TEXT;
      ALTER TABLE messages ADD COLUMN received_sha256 TEXT;
      ALTER TABLE messages ADD COLUMN related_row_id INTEGER;
      ALTER TABLE messages ADD COLUMN ack_due_at TEXT;
      CREATE INDEX messages_business_id ON messages (mailbox, direction, peer, business_id) WHERE business_id IS NOT NULL;
      CREATE INDEX messages_received_sha256 ON messages (mailbox, peer, received_sha256) WHERE received_sha256 IS NOT NULL;
      CREATE INDEX messages_ack_due ON messages (ack_due_at) WHERE ack_due_at IS NOT NULL;
      CREATE TABLE latest_events (
        mailbox    TEXT    NOT NULL,
        peer       TEXT    NOT NULL,
        key        TEXT    NOT NULL,
        event_time TEXT    NOT NULL,
        row_id     INTEGER NOT NULL,
        sha256     TEXT,
        PRIMARY KEY (mailbox, peer, key)
      ) STRICT;
      CREATE TABLE message_keys (
        row_id INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
        key    TEXT    NOT NULL,
        PRIMARY KEY (key, row_id)
      ) STRICT;
      CREATE INDEX message_keys_row ON message_keys (row_id);
    `,
  },
  {
    version: 7,
    // Overdue business ACKs, asked on every send cycle and /readyz: only sends still waiting for
    // one, per mailbox in due order. The index it replaces held every row ever given a due time,
    // answered or not, so the question read them all (or, as SQLite chose, every acknowledged row).
    sql: `
      DROP INDEX messages_ack_due;
      CREATE INDEX messages_ack_waiting ON messages (mailbox, ack_due_at)
        WHERE ack_due_at IS NOT NULL AND direction = 'out' AND state IN ('sent', 'acknowledged');
    `,
  },
  {
    version: 8,
    // What start-up recovery looks for: rows carrying a recovery mark, and received rows not yet
    // acknowledged to MESH. Both are a handful at any time, but were found by reading every row
    // of their state (failed and quarantined rows stay until retention): on a million rows, 1.6 s
    // of reads at a start cold in the OS cache. Each index holds only rows still in flight.
    sql: `
      CREATE INDEX messages_marked ON messages (mailbox, direction, state) WHERE recovery_mark IS NOT NULL;
      CREATE INDEX messages_unacknowledged ON messages (mailbox, state) WHERE acknowledged_at IS NULL AND direction = 'in';
    `,
  },
  {
    version: 9,
    // A send is now recorded `sent` already marked `filing` (its payload still in the spool), so
    // start-up recovery finds one stopped before filing through messages_marked. It used to look
    // for a sent row whose payload was still in the spool by reading every sent row of the mailbox
    // (only tracking settles them; retention purges settled rows alone): 240 ms at 49,000, at
    // every start. A row a stop left so under an earlier meshd is marked here: its payload path is
    // the spool copy's, <dataDir>/spool/<mailbox>/<claim id>.dat.
    sql: `
      UPDATE messages SET recovery_mark = 'filing'
        WHERE direction = 'out' AND state = 'sent' AND recovery_mark IS NULL AND payload_path IS NOT NULL AND claim_id IS NOT NULL
          AND substr(payload_path, -length('/spool/' || mailbox || '/' || claim_id || '.dat')) = '/spool/' || mailbox || '/' || claim_id || '.dat';
    `,
  },
  {
    version: 10,
    // Index entries nothing reads, each written with a row or event and deleted again by retention
    // (docs/performance.md §5). The work queue's questions (due work, the oldest waiting) are
    // answered from messages_age, whose first three columns are messages_work's: SQLite chose it
    // for every statement meshd prepares. The throughput chart (throughput(), the web console) is
    // the one reader of events by state and time, and asks only for moves into these five states;
    // the index it replaces held every event that moves a row (claiming, queued, receiving,
    // acknowledged, ...), three or four a message. Its condition is ORs, not IN: SQLite evaluates
    // an IN list of more than two values by building a small temporary index, at every insert.
    sql: `
      DROP INDEX messages_work;
      DROP INDEX events_to_state_at;
      CREATE INDEX events_throughput ON events (to_state, at)
        WHERE (to_state = 'sent' OR to_state = 'delivered' OR to_state = 'failed' OR to_state = 'quarantined' OR to_state = 'undeliverable');
    `,
  },
];

export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1].version;

/** Applies pending migrations; refuses a database written by a newer meshd. Returns the schema version. */
export function runMigrations(db: Database.Database, file: string, migrations: readonly Migration[] = MIGRATIONS): number {
  const latest = migrations[migrations.length - 1]?.version ?? 0;
  db.exec(`CREATE TABLE IF NOT EXISTS schema_version (
    version    INTEGER PRIMARY KEY,
    applied_at TEXT NOT NULL
  ) STRICT`);
  const readVersion = db.prepare('SELECT MAX(version) AS v FROM schema_version');
  const versionNow = (): number => (readVersion.get() as { v: number | null }).v ?? 0;
  let current = versionNow();
  if (current > latest) {
    throw new MeshdError(
      'LEDGER_TOO_NEW',
      `ledger ${file} has schema version ${current}; this meshd understands up to ${latest}`,
      'run the newer meshd that wrote it, or restore a backup taken by this version',
    );
  }
  const recordVersion = db.prepare('INSERT INTO schema_version (version, applied_at) VALUES (?, ?)');
  for (const migration of migrations) {
    if (migration.version <= current) continue;
    const foreignKeys = db.pragma('foreign_keys', { simple: true }) as number;
    if (migration.rebuildsTable) db.pragma('foreign_keys = OFF');
    try {
      db.transaction(() => {
        // Re-read under the write lock: another process may have migrated since we looked.
        if (versionNow() >= migration.version) return;
        db.exec(migration.sql);
        if (migration.rebuildsTable) {
          const broken = db.pragma('foreign_key_check') as unknown[];
          if (broken.length > 0) throw new MeshdError('LEDGER_MIGRATION_FAILED', `migration ${migration.version} of ${file} would break ${broken.length} references; nothing was changed`, 'restore the ledger from a backup and report this');
        }
        recordVersion.run(migration.version, new Date().toISOString());
      }).immediate();
    } finally {
      if (migration.rebuildsTable) db.pragma(`foreign_keys = ${foreignKeys ? 'ON' : 'OFF'}`);
    }
    current = migration.version;
  }
  return current;
}
