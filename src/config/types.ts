/**
 * The fully resolved configuration (config-schema contract): secrets are strings, paths are
 * absolute, sizes are byte counts and every default is filled in. Produced only by loadConfig.
 */

export type Environment = 'local' | 'int' | 'dep' | 'live';
export type LogLevelSetting = 'error' | 'warn' | 'info' | 'debug';

export interface TransformPair {
  from: string;
  to: string;
}

export interface RouteConfig {
  direction: 'in' | 'out';
  /** out: glob on the file name dropped in out/. */
  match?: string;
  /** out: recipient mailbox. */
  to?: string;
  /** in: optional sender mailbox filter. */
  from?: string;
  workflow: string;
  subject?: string;
  transform?: TransformPair;
  /** in: a message received before is dropped (acknowledged, recorded `duplicate`) or delivered again. */
  duplicates?: 'drop' | 'deliver';
  /** in: refuse events older than one already received for the same appointment or patient (`stale`). */
  ordering?: 'enforce' | 'off';
  /** in: send the sender a business acknowledgement on <workflow>_ACK. */
  ack?: boolean;
  /** out: seconds after sending by which a business acknowledgement must arrive (ACK_OVERDUE). */
  ackTimeout?: number;
  /** in, on an _ACK workflow: also deliver acknowledgements into in/. */
  deliverAcks?: boolean;
}

export interface MailboxConfig {
  /** Upper case, as MESH requires in the token. */
  id: string;
  password: string;
  /** Absolute; holds in/ out/ sent/ failed/ temp/. */
  folder: string;
  controlFiles: boolean;
  routes: RouteConfig[];
  /** This mailbox's own client certificate and key, when it does not use the top-level tls ones. */
  tls?: { cert: string; key: string };
}

export interface TlsConfig {
  /** Absolute paths to PEM files; absent only for a plain-http local simulator. */
  ca?: string;
  cert?: string;
  key?: string;
}

export interface TransferConfig {
  chunkSize: number;
  compress: boolean;
  maxMessageBytes: number;
  timeoutSeconds: number;
  /** A download stops before free space where it is written would drop below this. */
  minFreeBytes: number;
  /** A received message that decompresses to more than this many times its compressed size is a suspected gzip bomb. */
  maxCompressionRatio: number;
}

export interface TransformConfig {
  /** A payload larger than this on a converting route is quarantined, never loaded. */
  maxInputBytes: number;
}

export interface RetryConfig {
  attempts: number;
  initialDelayMs: number;
  maxDelayMs: number;
  maxTotalMs: number;
}

export interface ScheduleConfig {
  poll: string;
  outboundScan: string;
  tracking: string;
  handshake: string;
  settleSeconds: number;
}

export interface LedgerConfig {
  payloadRetentionDays: number;
  rowRetentionDays: number;
  ambiguousSend: 'review' | 'resend';
  /** The resolved connection URL of a shared PostgreSQL ledger; absent: SQLite in dataDir. */
  postgres?: string;
}

/** This process among several sharing a PostgreSQL ledger (docs/operations.md, Several hosts). */
export interface NodeConfig {
  /** MESHD_NODE_ID, else config `node.id`; absent: hostname-pid, chosen by `meshd run`. */
  id?: string;
  leaseSeconds: number;
}

export interface HealthConfig {
  /** 0 = off. */
  port: number;
  host: string;
}

/** The web console (docs/ui.md): `meshd ui`, and `meshd run` when this section is present. */
export interface UiConfig {
  port: number;
  host: string;
  /** No retry or resolve buttons; POSTs are refused. */
  readOnly: boolean;
  /** Payload previews on message pages (payloads hold patient data): off by default. */
  showPayloads: boolean;
  /** Required to bind to anything but loopback. Absolute paths. */
  tls?: { cert: string; key: string };
}

export interface MeshdConfig {
  /** Absolute path of the file this came from, and its directory. */
  configPath: string;
  configDir: string;
  environment: Environment;
  /** Base URL without a trailing slash, e.g. https://msg.intspineservices.nhs.uk */
  url: string;
  sharedKey: string;
  tls: TlsConfig;
  proxy?: string;
  dataDir: string;
  transfer: TransferConfig;
  transform: TransformConfig;
  retry: RetryConfig;
  schedule: ScheduleConfig;
  ledger: LedgerConfig;
  node: NodeConfig;
  health: HealthConfig;
  /** Absent unless the config has a `ui` section. */
  ui?: UiConfig;
  log: { level: LogLevelSetting; format: 'auto' | 'json' | 'text' };
  mailboxes: MailboxConfig[];
}
