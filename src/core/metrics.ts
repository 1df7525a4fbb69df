/**
 * Bounded transaction metrics: counters by outcome and by error code, a gauge of active
 * transactions, a fixed-bucket duration histogram and a ring of the slowest recent
 * transactions. Memory use does not grow with traffic.
 */
import { TxkitError } from './errors.js';

/** Upper bounds (ms) of the duration histogram buckets; the last bucket is unbounded. */
export const DURATION_BUCKETS_MS: readonly number[] = [
  1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000,
];

export interface SlowTransaction {
  txId: string;
  name: string | undefined;
  durationMs: number;
  outcome: 'committed' | 'rolled_back' | 'unknown';
  at: Date;
}

export interface MetricsSnapshot {
  started: number;
  committed: number;
  rolledBack: number;
  /** Rollbacks by reason (error, rollback-only, timeout, ...). */
  rollbacksByReason: Record<string, number>;
  unknownOutcome: number;
  retries: number;
  /** Failures by error code (E_DEADLOCK, E_BUSY, ...); non-txkit errors count as `other`. */
  errorsByCode: Record<string, number>;
  deadlocks: number;
  serializationFailures: number;
  busy: number;
  lockTimeouts: number;
  active: number;
  /** Percentage of finished transactions that committed. */
  successRate: number;
  averageDurationMs: number;
  durationHistogram: { le: number; count: number }[];
  slow: SlowTransaction[];
}

export class Metrics {
  #started = 0;
  #committed = 0;
  #rolledBack = 0;
  #unknown = 0;
  #retries = 0;
  #active = 0;
  #durationSum = 0;
  #finished = 0;
  #byReason = new Map<string, number>();
  #byCode = new Map<string, number>();
  #buckets = new Array<number>(DURATION_BUCKETS_MS.length + 1).fill(0);
  #slow: SlowTransaction[] = [];
  #slowNext = 0;

  constructor(private readonly slowCapacity = 100) {}

  started(): void {
    this.#started++;
    this.#active++;
  }

  finished(outcome: 'committed' | 'rolled_back' | 'unknown', durationMs: number, reason?: string): void {
    this.#active--;
    this.#finished++;
    this.#durationSum += durationMs;
    let b = 0;
    while (b < DURATION_BUCKETS_MS.length && durationMs > DURATION_BUCKETS_MS[b]!) b++;
    this.#buckets[b]!++;
    if (outcome === 'committed') this.#committed++;
    else if (outcome === 'unknown') this.#unknown++;
    else {
      this.#rolledBack++;
      const r = reason ?? 'error';
      this.#byReason.set(r, (this.#byReason.get(r) ?? 0) + 1);
    }
  }

  error(err: unknown): void {
    const code = err instanceof TxkitError ? err.code : 'other';
    this.#byCode.set(code, (this.#byCode.get(code) ?? 0) + 1);
  }

  retried(): void {
    this.#retries++;
  }

  slow(entry: SlowTransaction): void {
    if (this.#slow.length < this.slowCapacity) this.#slow.push(entry);
    else this.#slow[this.#slowNext] = entry;
    this.#slowNext = (this.#slowNext + 1) % this.slowCapacity;
  }

  snapshot(): MetricsSnapshot {
    const code = (c: string) => this.#byCode.get(c) ?? 0;
    let cumulative = 0;
    return {
      started: this.#started,
      committed: this.#committed,
      rolledBack: this.#rolledBack,
      rollbacksByReason: Object.fromEntries(this.#byReason),
      unknownOutcome: this.#unknown,
      retries: this.#retries,
      errorsByCode: Object.fromEntries(this.#byCode),
      deadlocks: code('E_DEADLOCK'),
      serializationFailures: code('E_SERIALIZATION'),
      busy: code('E_BUSY'),
      lockTimeouts: code('E_LOCK_TIMEOUT'),
      active: this.#active,
      successRate: this.#finished === 0 ? 100 : (this.#committed / this.#finished) * 100,
      averageDurationMs: this.#finished === 0 ? 0 : this.#durationSum / this.#finished,
      durationHistogram: this.#buckets.map((count, i) => {
        cumulative += count;
        return { le: DURATION_BUCKETS_MS[i] ?? Number.POSITIVE_INFINITY, count: cumulative };
      }),
      slow: [...this.#slow].sort((a, b) => b.durationMs - a.durationMs),
    };
  }

  /** Resets counters and history; the active gauge keeps counting transactions still running. */
  reset(): void {
    const active = this.#active;
    this.#started = this.#committed = this.#rolledBack = this.#unknown = this.#retries = 0;
    this.#durationSum = this.#finished = 0;
    this.#byReason.clear();
    this.#byCode.clear();
    this.#buckets.fill(0);
    this.#slow = [];
    this.#slowNext = 0;
    this.#active = active;
  }
}
