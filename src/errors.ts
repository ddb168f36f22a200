/**
 * Errors that reach a person carry a stable code, what failed, and what to do.
 * Callers branch on `code` or `kind`, never on message text.
 */

/** Broad class of failure; the CLI maps each to a documented exit code (src/cli/exit.ts). */
export type ErrorKind = 'failure' | 'usage' | 'config' | 'rejected' | 'transient' | 'auth' | 'input' | 'ambiguous';

export class MeshdError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly hint?: string,
    readonly kind: ErrorKind = 'failure',
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A configuration problem: `key` names the offending YAML key (dotted path). */
export class ConfigError extends MeshdError {
  constructor(
    readonly key: string,
    message: string,
    hint?: string,
  ) {
    super('CONFIG_INVALID', `${key}: ${message}`, hint, 'config');
  }
}

/** Bad input data (a payload, a control file): quarantined, never crashes the daemon. */
export class InputError extends MeshdError {
  constructor(code: string, message: string, hint?: string) {
    super(code, message, hint, 'input');
  }
}
