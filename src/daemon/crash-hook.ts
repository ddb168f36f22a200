import type { LedgerStore } from '../ledger';

/**
 * Test hook for the crash suite: with MESHD_TEST_CRASH_AFTER_WRITES=N the process kills itself
 * with SIGKILL right after its Nth ledger write, so kill points land exactly on claims, chunk
 * records, deliveries and acknowledgements. Unset (always, outside tests) it does nothing.
 */
export function withCrashHook(ledger: LedgerStore, env: NodeJS.ProcessEnv = process.env): LedgerStore {
  const limit = Number(env.MESHD_TEST_CRASH_AFTER_WRITES);
  if (!Number.isInteger(limit) || limit <= 0) return ledger;
  let writes = 0;
  const counted = <A extends unknown[], R>(fn: (...args: A) => R) =>
    (...args: A): R => {
      const result = fn.apply(ledger, args);
      if (++writes >= limit) process.kill(process.pid, 'SIGKILL');
      return result;
    };
  return new Proxy(ledger, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function') return value;
      if (prop === 'insertMessage' || prop === 'transition' || prop === 'update' || prop === 'recordEvent') return counted(value as (...a: unknown[]) => unknown);
      return value.bind(target);
    },
  });
}
