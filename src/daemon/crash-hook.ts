import type { LedgerStore } from '../ledger';

/**
 * Test hook for the crash suite: with MESHD_TEST_CRASH_AFTER_WRITES=N the process kills itself
 * with SIGKILL right after its Nth ledger write, so kill points land exactly on claims, chunk
 * records, deliveries and acknowledgements; with MESHD_TEST_CRASH_AT=TYPE, right after the first
 * write recording that event type (e.g. `acknowledged`), so a kill lands where a given recovery
 * is needed. Unset (always, outside tests) it does nothing.
 */
/** The ledger event type a write records, by the store's signatures (types.ts). */
function eventType(method: string, args: unknown[]): string | undefined {
  const at = (i: number) => args[i] as { type?: string; event?: { type?: string } } | string | undefined;
  switch (method) {
    case 'insertMessage':
      return (at(1) as { type?: string } | undefined)?.type ?? 'created';
    case 'transition':
    case 'setMark':
      return (at(2) as { event?: { type?: string } } | undefined)?.event?.type ?? method;
    case 'update':
      return (at(2) as { type?: string } | undefined)?.type ?? 'update';
    default:
      return at(1) as string | undefined;
  }
}

const WRITES = new Set<string | symbol>(['insertMessage', 'transition', 'setMark', 'update', 'recordEvent']);

export function withCrashHook(ledger: LedgerStore, env: NodeJS.ProcessEnv = process.env): LedgerStore {
  const limit = Number(env.MESHD_TEST_CRASH_AFTER_WRITES);
  const at = env.MESHD_TEST_CRASH_AT;
  if ((!Number.isInteger(limit) || limit <= 0) && !at) return ledger;
  let writes = 0;
  const counted = <A extends unknown[], R>(method: string, fn: (...args: A) => R) =>
    (...args: A): R => {
      const result = fn.apply(ledger, args);
      if (at ? eventType(method, args) === at : ++writes >= limit) {
        // Where the kill landed, for the crash suite's record: the write and its event type.
        process.stderr.write(JSON.stringify({ event: 'TEST_CRASH_POINT', write: method, type: eventType(method, args) }) + '\n');
        process.kill(process.pid, 'SIGKILL');
      }
      return result;
    };
  return new Proxy(ledger, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function') return value;
      if (WRITES.has(prop)) return counted(String(prop), value as (...a: unknown[]) => unknown);
      return value.bind(target);
    },
  });
}
