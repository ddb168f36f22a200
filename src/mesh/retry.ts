/**
 * The one retry policy for MESH calls: exponential backoff from initialDelayMs doubling to
 * maxDelayMs with full jitter, Retry-After honoured, at most `attempts` tries and maxTotalMs
 * in all. Clock, sleep and randomness are injectable so tests never wait.
 */

export interface RetrySettings {
  attempts: number;
  initialDelayMs: number;
  maxDelayMs: number;
  maxTotalMs: number;
}

export interface RetryHooks {
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
}

export const DEFAULT_RETRY: RetrySettings = { attempts: 6, initialDelayMs: 1000, maxDelayMs: 60_000, maxTotalMs: 300_000 };

/** What to do with a failed attempt. */
export type RetryVerdict = { retry: false } | { retry: true; retryAfterMs?: number };

export const realSleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class RetryPolicy {
  readonly settings: RetrySettings;
  private readonly now: () => number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly random: () => number;

  constructor(settings: Partial<RetrySettings> = {}, hooks: RetryHooks = {}) {
    this.settings = { ...DEFAULT_RETRY, ...settings };
    this.now = hooks.now ?? Date.now;
    this.sleep = hooks.sleep ?? realSleep;
    this.random = hooks.random ?? Math.random;
  }

  /** Full-jitter delay before retry number `retry` (1 = first retry). */
  backoff(retry: number): number {
    const { initialDelayMs, maxDelayMs } = this.settings;
    const ceiling = Math.min(maxDelayMs, initialDelayMs * 2 ** Math.min(retry - 1, 30));
    return Math.floor(this.random() * ceiling);
  }

  /**
   * Runs `attempt` until it succeeds, `classify` says stop, or the budget is spent; then the
   * last error is rethrown (`onGiveUp` may replace it, e.g. to say retries ran out).
   */
  async run<T>(
    attempt: (n: number) => Promise<T>,
    classify: (err: unknown) => RetryVerdict,
    onRetry?: (err: unknown, n: number, delayMs: number) => void,
  ): Promise<T> {
    const started = this.now();
    for (let n = 1; ; n++) {
      try {
        return await attempt(n);
      } catch (err) {
        const verdict = classify(err);
        if (!verdict.retry || n >= this.settings.attempts) throw err;
        const delay = verdict.retryAfterMs !== undefined ? verdict.retryAfterMs : this.backoff(n);
        if (this.now() - started + delay > this.settings.maxTotalMs) throw err;
        onRetry?.(err, n, delay);
        await this.sleep(delay);
      }
    }
  }
}
