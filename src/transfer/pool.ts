/** Runs `work` over `items` with at most `limit` in flight; results keep input order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, work: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const runners = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await work(items[i], i);
    }
  });
  await Promise.all(runners);
  return results;
}

/**
 * A lock: work passed to it runs one at a time, in call order, even when called side by side.
 * For steps that pick a free name and then take it (two at once could pick the same one), and
 * for conversions, which the poison guard counts one at a time.
 */
export function mutex(): <R>(work: () => Promise<R>) => Promise<R> {
  let last: Promise<unknown> = Promise.resolve();
  return (work) => {
    const next = last.then(work);
    last = next.catch(() => undefined);
    return next;
  };
}

/**
 * Work run in the background one at a time, in the order added; a failure does not stop later
 * work. settled() waits for all of it and then rethrows the first failure.
 */
export function backgroundQueue(): { add: (work: () => Promise<unknown>) => void; settled: () => Promise<void> } {
  const lock = mutex();
  const runs: Array<Promise<unknown>> = [];
  return {
    add: (work) => {
      const run = lock(work);
      run.catch(() => undefined); // reported by settled()
      runs.push(run);
    },
    settled: async () => {
      const failed = (await Promise.allSettled(runs)).find((r) => r.status === 'rejected');
      if (failed) throw failed.reason;
    },
  };
}

/**
 * File-system steps of a batch in flight at once: each is a round trip through libuv's thread
 * pool (UV_THREADPOOL_SIZE, 16 in bin/meshd.js), and fsyncs side by side share journal commits.
 */
export const FS_CONCURRENCY = 16;
