import { MeshdError } from '../../errors';
import type { SyncPg } from './bridge';

/**
 * The PostgreSQL ledger's forward-only migrations: the same version numbers as SQLite's
 * (../schema.ts), each bringing the same tables, columns, checks and indexes in PostgreSQL's
 * terms. A shipped migration is never edited: append a new one under the number SQLite uses.
 * Times are timestamptz (read back as the same ISO strings), ids are identity columns
 * (a sequence never hands a value out twice), event detail is jsonb.
 */
export interface PgMigration {
  version: number;
  sql: string;
}

export const PG_MIGRATIONS: readonly PgMigration[] = [
  {
    version: 1,
    sql: `
      CREATE TABLE messages (
        id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        direction         text    NOT NULL CHECK (direction IN ('out', 'in')),
        mailbox           text    NOT NULL,
        peer              text,
        workflow_id       text,
        message_id        text,
        local_id          text,
        subject           text,
        message_type      text    NOT NULL DEFAULT 'DATA' CHECK (message_type IN ('DATA', 'REPORT')),
        file_name         text,
        payload_path      text,
        ctl_path          text,
        size_bytes        bigint,
        sha256            text,
        chunk_size        bigint,
        chunks_total      integer,
        chunks_done       integer NOT NULL DEFAULT 0,
        compress          boolean NOT NULL DEFAULT false,
        transform         text,
        attempts          integer NOT NULL DEFAULT 0,
        next_attempt_at   timestamptz,
        error_code        text,
        error_text        text,
        linked_message_id text,
        report_code       text,
        -- Checked against the transition table in code, as in SQLite.
        state             text    NOT NULL,
        created_at        timestamptz NOT NULL,
        updated_at        timestamptz NOT NULL,
        acknowledged_at   timestamptz
      );
      CREATE UNIQUE INDEX messages_mailbox_direction_message_id
        ON messages (mailbox, direction, message_id) WHERE message_id IS NOT NULL;
      CREATE INDEX messages_message_id ON messages (message_id) WHERE message_id IS NOT NULL;
      CREATE INDEX messages_work ON messages (mailbox, direction, state, next_attempt_at);
      CREATE INDEX messages_state_updated ON messages (state, updated_at);
      CREATE INDEX messages_created ON messages (created_at);

      CREATE TABLE events (
        id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        message_row_id bigint NOT NULL REFERENCES messages (id),
        at             timestamptz NOT NULL,
        type           text    NOT NULL,
        from_state     text,
        to_state       text,
        detail         jsonb
      );
      CREATE INDEX events_message ON events (message_row_id, id);

      -- The audit trail is append-only, enforced in the database. Retention purge alone may delete,
      -- and only inside its own transaction, where it sets meshd.purge (SET LOCAL: no other
      -- transaction or connection ever sees it). This plays SQLite's purge_guard row.
      CREATE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF TG_OP = 'DELETE' AND current_setting('meshd.purge', true) = 'on' THEN
          RETURN OLD;
        END IF;
        IF TG_OP = 'UPDATE' THEN
          RAISE EXCEPTION 'events are append-only';
        END IF;
        RAISE EXCEPTION 'events are append-only (only retention purge deletes them)';
      END;
      $$;
      CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
        FOR EACH ROW EXECUTE FUNCTION events_append_only();
      CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
        FOR EACH STATEMENT EXECUTE FUNCTION events_append_only();

      CREATE TABLE appointments (
        appointment_key text    NOT NULL,
        direction       text    NOT NULL CHECK (direction IN ('out', 'in')),
        event_kind      text    NOT NULL,
        trigger_event   text,
        start_at        timestamptz,
        status          text,
        at              timestamptz NOT NULL,
        message_row_id  bigint REFERENCES messages (id) ON DELETE SET NULL,
        PRIMARY KEY (appointment_key, direction)
      );
      CREATE INDEX appointments_at ON appointments (at);

      CREATE TABLE mailbox_status (
        mailbox           text PRIMARY KEY,
        last_poll_at      timestamptz,
        last_poll_ok      boolean,
        last_poll_error   text,
        last_handshake_at timestamptz,
        last_tracking_at  timestamptz
      );
    `,
  },
  {
    version: 2,
    // SQLite's version 2 rebuilt the table for AUTOINCREMENT; identity columns never reuse ids already.
    sql: `
      ALTER TABLE messages
        ADD COLUMN claim_id text CHECK (claim_id IS NULL OR claim_id ~ '^[0-9a-f]{32}$'),
        ADD COLUMN source_mtime_ms double precision,
        ADD COLUMN processing_starts integer NOT NULL DEFAULT 0;
      UPDATE messages SET claim_id = md5(random()::text || id::text);
      CREATE UNIQUE INDEX messages_claim_id ON messages (claim_id) WHERE claim_id IS NOT NULL;
    `,
  },
  {
    version: 3,
    sql: `
      ALTER TABLE messages ADD COLUMN recovery_mark text CHECK (recovery_mark IS NULL OR recovery_mark IN ('post_in_flight', 'filing'));
      UPDATE messages SET recovery_mark = 'post_in_flight', error_code = NULL WHERE error_code = 'POST_IN_FLIGHT';
      UPDATE messages SET recovery_mark = 'filing', error_code = NULL WHERE error_code = 'FILING';
      UPDATE messages SET recovery_mark = 'filing', error_text = substr(error_text, 10) WHERE error_text LIKE '[filing] %';
      UPDATE messages SET error_code = 'MESH_SEND_AMBIGUOUS' WHERE error_code = 'MESH_AMBIGUOUS';
    `,
  },
  {
    version: 4,
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
    // SQLite's version 5 adds trigger-kept counts and an integrity-check stamp; PostgreSQL
    // counts with these indexes and checks itself. The indexes are the same.
    sql: `
      CREATE INDEX messages_age ON messages (mailbox, direction, state, created_at);
      CREATE INDEX messages_payload_age ON messages (updated_at)
        WHERE (payload_path IS NOT NULL OR ctl_path IS NOT NULL) AND (direction = 'out' OR state = 'quarantined');
      CREATE INDEX appointments_message ON appointments (message_row_id);
    `,
  },
  {
    version: 6,
    // As SQLite's version 6: business id, event time, received hash, related row, ACK due time.
    sql: `
      ALTER TABLE messages ADD COLUMN business_id text;
      ALTER TABLE messages ADD COLUMN event_time timestamptz;
      ALTER TABLE messages ADD COLUMN received_sha256 text;
      ALTER TABLE messages ADD COLUMN related_row_id bigint;
      ALTER TABLE messages ADD COLUMN ack_due_at timestamptz;
      CREATE INDEX messages_business_id ON messages (mailbox, direction, peer, business_id) WHERE business_id IS NOT NULL;
      CREATE INDEX messages_received_sha256 ON messages (mailbox, peer, received_sha256) WHERE received_sha256 IS NOT NULL;
      CREATE INDEX messages_ack_due ON messages (ack_due_at) WHERE ack_due_at IS NOT NULL;
      CREATE TABLE latest_events (
        mailbox    text        NOT NULL,
        peer       text        NOT NULL,
        key        text        NOT NULL,
        event_time timestamptz NOT NULL,
        row_id     bigint      NOT NULL,
        sha256     text,
        PRIMARY KEY (mailbox, peer, key)
      );
      CREATE TABLE message_keys (
        row_id bigint NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
        key    text   NOT NULL,
        PRIMARY KEY (key, row_id)
      );
      CREATE INDEX message_keys_row ON message_keys (row_id);
    `,
  },
  {
    version: 7,
    // As SQLite's migration 7: overdue business ACKs read only the sends still waiting for one.
    sql: `
      DROP INDEX messages_ack_due;
      CREATE INDEX messages_ack_waiting ON messages (mailbox, ack_due_at)
        WHERE ack_due_at IS NOT NULL AND direction = 'out' AND state IN ('sent', 'acknowledged');
    `,
  },
  {
    version: 8,
    // As SQLite's migration 8: start-up recovery reads only marked rows and unacknowledged received rows.
    sql: `
      CREATE INDEX messages_marked ON messages (mailbox, direction, state) WHERE recovery_mark IS NOT NULL;
      CREATE INDEX messages_unacknowledged ON messages (mailbox, state) WHERE acknowledged_at IS NULL AND direction = 'in';
    `,
  },
  {
    version: 9,
    // As SQLite's migration 9: a sent row a stop left in the spool, unmarked, is marked filing.
    sql: `
      UPDATE messages SET recovery_mark = 'filing'
        WHERE direction = 'out' AND state = 'sent' AND recovery_mark IS NULL AND payload_path IS NOT NULL AND claim_id IS NOT NULL
          AND right(payload_path, length('/spool/' || mailbox || '/' || claim_id || '.dat')) = '/spool/' || mailbox || '/' || claim_id || '.dat';
    `,
  },
  {
    version: 10,
    // As SQLite's migration 10: messages_work goes, and the throughput chart's index holds only
    // moves into the states it counts. With statistics (ANALYZE, 200,000 rows), PostgreSQL planned
    // due work (by messages_state, ordered NULLS FIRST) and the oldest waiting row (by messages_age)
    // the same with messages_work and without it (docs/performance.md §5, stop 33).
    sql: `
      DROP INDEX messages_work;
      DROP INDEX events_to_state_at;
      CREATE INDEX events_throughput ON events (to_state, at)
        WHERE to_state IN ('sent', 'delivered', 'failed', 'quarantined', 'undeliverable');
    `,
  },
];

/** Every meshd migrates under this session advisory lock, so hosts starting together migrate once. */
export const MIGRATION_LOCK = 7_146_530_001;

/**
 * Applies pending migrations, each in its own transaction with its schema_version row, under the
 * advisory lock; refuses a database written by a newer meshd. Returns the schema version.
 * With create false, a database without the ledger's tables is refused instead of initialised.
 */
export function runPgMigrations(
  db: SyncPg,
  where: string,
  opts: { create?: boolean; migrations?: readonly PgMigration[]; /** Another list (hosts and leases) keeps its own. */ versionTable?: string } = {},
): number {
  const migrations = opts.migrations ?? PG_MIGRATIONS;
  const table = opts.versionTable ?? 'schema_version';
  const latest = migrations[migrations.length - 1]?.version ?? 0;
  db.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
  try {
    const exists = db.rows('SELECT to_regclass($1) IS NOT NULL AS e', [table])[0].e === true;
    if (!exists && opts.create === false) {
      throw new MeshdError('LEDGER_MISSING', `no ledger in ${where}`, 'the daemon creates the ledger tables on first run');
    }
    db.query(`CREATE TABLE IF NOT EXISTS ${table} (version integer PRIMARY KEY, applied_at timestamptz NOT NULL)`);
    let current = Number(db.rows(`SELECT COALESCE(MAX(version), 0) AS v FROM ${table}`)[0].v);
    if (current > latest) {
      throw new MeshdError(
        'LEDGER_TOO_NEW',
        `ledger ${where} has schema version ${current}; this meshd understands up to ${latest}`,
        'run the newer meshd that wrote it, or restore a backup taken by this version',
      );
    }
    for (const migration of migrations) {
      if (migration.version <= current) continue;
      db.query('BEGIN');
      try {
        db.query(migration.sql);
        db.query(`INSERT INTO ${table} (version, applied_at) VALUES ($1, now())`, [migration.version]);
        db.query('COMMIT');
      } catch (err) {
        db.query('ROLLBACK');
        throw new MeshdError('LEDGER_MIGRATION_FAILED', `migration ${migration.version} of ${where} failed: ${(err as Error).message}; nothing was changed`, 'restore the database from a backup and report this', 'failure', { cause: err });
      }
      current = migration.version;
    }
    return current;
  } finally {
    db.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]);
  }
}
