import { MeshdError } from '../errors';

/** A simulator set-up problem (bad fault spec, bad option). Stable code, what failed, what to do. */
export class SimError extends MeshdError {
  constructor(code: string, message: string, hint?: string) {
    super(code, message, hint, 'usage');
  }
}
