import type { LedgerStore } from './types';

/**
 * Group commit: writes asked for in the same turn of the event loop are committed together, in
 * one transaction (one fsync), at the end of that turn. Each caller's promise settles only once its
 * own write is durable, so a caller that waits for it gives up no guarantee; one write that fails
 * (a state check, say) is rolled back alone (a savepoint) and fails only its own caller.
 *
 * Used where many answers from MESH arrive close together and each must be recorded before the
 * next step for that message (a message id before its second chunk, before filing).
 */
export function groupCommit(ledger: Pick<LedgerStore, 'transaction'>): <T>(write: () => T) => Promise<T> {
  let pending: Array<{ write: () => unknown; resolve: (value: unknown) => void; reject: (err: unknown) => void }> = [];
  const flush = () => {
    const batch = pending;
    pending = [];
    const results: Array<{ ok: true; value: unknown } | { ok: false; err: unknown }> = [];
    try {
      ledger.transaction(() => {
        for (const p of batch) {
          try {
            results.push({ ok: true, value: ledger.transaction(p.write) });
          } catch (err) {
            results.push({ ok: false, err });
          }
        }
      });
    } catch (err) {
      for (const p of batch) p.reject(err); // the commit itself failed: nothing of the group is durable
      return;
    }
    batch.forEach((p, i) => {
      const r = results[i];
      if (r.ok) p.resolve(r.value);
      else p.reject(r.err);
    });
  };
  return <T>(write: () => T) =>
    new Promise<T>((resolve, reject) => {
      if (pending.length === 0) setImmediate(flush);
      pending.push({ write, resolve: resolve as (value: unknown) => void, reject });
    });
}
