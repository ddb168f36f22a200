import { createHash } from 'node:crypto';

/**
 * An appointment or patient key as the ledger keeps it, per peer mailbox: its kind in clear (for
 * reasons a person reads), the rest hashed, since a patient key holds an NHS number.
 */
export function orderingKey(peer: string, key: string): string {
  const kind = key.slice(0, Math.max(0, key.indexOf(':'))) || 'key';
  return `${kind}:${createHash('sha256').update(`${peer}\n${key}`).digest('hex')}`;
}
