import type { ErrorKind } from '../errors';

/** Documented process exit codes (README "Exit codes"). Keep in step with the docs. */
export const EXIT = {
  OK: 0,
  /** Something failed that fits no narrower code (see the message). */
  FAILURE: 1,
  /** Bad command-line usage. */
  USAGE: 2,
  /** Configuration missing or invalid. */
  CONFIG: 3,
  /** MESH refused the request (4xx with a MESH error code, not found, gone). */
  REJECTED: 4,
  /** A transient failure persisted after every retry (network, 5xx, 429). */
  TRANSIENT: 5,
  /** TLS or authentication failure (certificate, password, shared key, clock). */
  AUTH: 6,
  /** Input could not be read or converted (bad payload or control file). */
  INVALID_INPUT: 7,
  /** Outcome unknown: a send may or may not have reached MESH; review before resending. */
  AMBIGUOUS: 8,
} as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export function exitCodeFor(kind: ErrorKind | undefined): ExitCode {
  switch (kind) {
    case 'usage':
      return EXIT.USAGE;
    case 'config':
      return EXIT.CONFIG;
    case 'rejected':
      return EXIT.REJECTED;
    case 'transient':
      return EXIT.TRANSIENT;
    case 'auth':
      return EXIT.AUTH;
    case 'input':
      return EXIT.INVALID_INPUT;
    case 'ambiguous':
      return EXIT.AMBIGUOUS;
    default:
      return EXIT.FAILURE;
  }
}
