/**
 * Retry policy: which errors to retry, how often, and how long to wait in between.
 * The delay before retry n (0-based) is `min(baseDelayMs * factor ** n, maxDelayMs)`, then jittered.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { InvalidOptionError, isRetryable, TransactionCancelledError } from './errors.js';

export type Jitter = 'none' | 'proportional' | 'full';

export interface RetryPolicy {
  /** Total attempts including the first. Default 4 (three retries). */
  maxAttempts?: number;
  /** Delay before the first retry. Default 100 ms. */
  baseDelayMs?: number;
  /** Cap on any single delay. Default 10 000 ms. */
  maxDelayMs?: number;
  /** Growth per retry. Default 2. */
  factor?: number;
  /**
   * `'proportional'`: ± `jitterRatio` of the delay (default, ratio 0.1);
   * `'full'`: uniform in [0, delay] (best under heavy contention); `'none'`.
   */
  jitter?: Jitter;
  jitterRatio?: number;
  /** Which errors to retry. Default: {@link isRetryable} (deadlocks, serialization failures, busy). */
  retryOn?: (err: unknown, attempt: number) => boolean;
  /** Random source in [0, 1), injectable for tests. */
  random?: () => number;
  /**
   * The work is safe to apply twice, so an unknown commit outcome (`E_COMMIT_UNKNOWN`) may
   * be retried too. Default false: an unknown outcome is never retried, whatever `retryOn` says.
   */
  idempotent?: boolean;
}

export type ResolvedRetryPolicy = Required<Omit<RetryPolicy, 'retryOn'>> & {
  retryOn: (err: unknown, attempt: number) => boolean;
};

export const DEFAULT_RETRY: Readonly<ResolvedRetryPolicy> = Object.freeze({
  maxAttempts: 4,
  baseDelayMs: 100,
  maxDelayMs: 10_000,
  factor: 2,
  jitter: 'proportional',
  jitterRatio: 0.1,
  retryOn: (err: unknown) => isRetryable(err),
  random: Math.random,
  idempotent: false,
});

const JITTERS: readonly Jitter[] = ['none', 'proportional', 'full'];
const RETRY_KEYS: ReadonlySet<string> = new Set(Object.keys(DEFAULT_RETRY));

function checkNumber(name: string, v: unknown, min: number, integer = false): void {
  if (v === undefined) return;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || (integer && !Number.isInteger(v))) {
    throw new InvalidOptionError(
      `retry.${name} must be ${integer ? 'an integer' : 'a finite number'} >= ${min}, got ${String(v)}`,
    );
  }
}

/** Validates a user's `retry` option and fills in defaults. `false`/`undefined` mean no retry. */
export function resolveRetry(option: RetryPolicy | boolean | undefined): ResolvedRetryPolicy | undefined {
  if (option === undefined || option === false) return undefined;
  if (option === true) return DEFAULT_RETRY;
  if (typeof option !== 'object' || option === null) {
    throw new InvalidOptionError(`retry must be true, false or a policy object, got ${String(option)}`);
  }
  for (const key of Object.keys(option)) {
    if (!RETRY_KEYS.has(key)) {
      throw new InvalidOptionError(`unknown retry option '${key}'; allowed: ${[...RETRY_KEYS].join(', ')}`);
    }
  }
  checkNumber('maxAttempts', option.maxAttempts, 1, true);
  checkNumber('baseDelayMs', option.baseDelayMs, 0);
  checkNumber('maxDelayMs', option.maxDelayMs, 0);
  checkNumber('factor', option.factor, 1);
  checkNumber('jitterRatio', option.jitterRatio, 0);
  if (option.jitterRatio !== undefined && option.jitterRatio > 1) {
    throw new InvalidOptionError(`retry.jitterRatio must be between 0 and 1, got ${option.jitterRatio}`);
  }
  if (option.jitter !== undefined && !JITTERS.includes(option.jitter)) {
    throw new InvalidOptionError(
      `retry.jitter must be one of ${JITTERS.join(', ')}, got ${String(option.jitter)}`,
    );
  }
  if (option.idempotent !== undefined && typeof option.idempotent !== 'boolean') {
    throw new InvalidOptionError(`retry.idempotent must be true or false, got ${String(option.idempotent)}`);
  }
  for (const fn of ['retryOn', 'random'] as const) {
    if (option[fn] !== undefined && typeof option[fn] !== 'function') {
      throw new InvalidOptionError(`retry.${fn} must be a function`);
    }
  }
  const resolved = { ...DEFAULT_RETRY } as ResolvedRetryPolicy;
  for (const [k, v] of Object.entries(option)) if (v !== undefined) (resolved as any)[k] = v;
  return resolved;
}

/**
 * Whether `err`, thrown by attempt number `attempt`, may be retried under `policy`. An
 * unknown commit outcome is retried only for idempotent work: the first attempt may
 * have committed.
 */
export function mayRetry(policy: ResolvedRetryPolicy, err: unknown, attempt: number): boolean {
  if (attempt >= policy.maxAttempts) return false;
  if (!policy.idempotent && (err as { code?: unknown } | null)?.code === 'E_COMMIT_UNKNOWN') return false;
  return policy.retryOn(err, attempt);
}

/** Delay in ms before retry number `retryIndex` (0 for the first retry). */
export function retryDelay(policy: ResolvedRetryPolicy, retryIndex: number): number {
  const nominal = Math.min(policy.baseDelayMs * policy.factor ** retryIndex, policy.maxDelayMs);
  switch (policy.jitter) {
    case 'none':
      return nominal;
    case 'full':
      return policy.random() * nominal;
    default: {
      const spread = nominal * policy.jitterRatio;
      return Math.max(0, nominal - spread + policy.random() * 2 * spread);
    }
  }
}

/** An abortable, non-blocking wait. */
export async function waitFor(ms: number, signal?: AbortSignal): Promise<void> {
  if (ms <= 0 && !signal?.aborted) return;
  try {
    await sleep(ms, undefined, signal ? { signal } : undefined);
  } catch (err) {
    if (signal?.aborted)
      throw new TransactionCancelledError('cancelled while waiting to retry', { cause: signal.reason });
    throw err;
  }
}

export interface RetryLoopHooks {
  signal?: AbortSignal;
  onRetry?: (info: { attempt: number; delayMs: number; error: unknown }) => void;
}

/**
 * Runs `attempt` until it succeeds, the policy gives up, or the error is not retryable.
 * The error finally thrown carries `attempts`. Used by resources that retry on their own
 * (Redis optimistic transactions); the transaction runner has its own loop, because it
 * decides about retrying before it rolls back (hooks run only for the final attempt).
 */
export async function withRetry<T>(
  policy: ResolvedRetryPolicy | undefined,
  attempt: (attemptNo: number) => Promise<T>,
  hooks: RetryLoopHooks = {},
): Promise<T> {
  for (let n = 1; ; n++) {
    try {
      return await attempt(n);
    } catch (err) {
      if (!policy || hooks.signal?.aborted || !mayRetry(policy, err, n)) {
        if (policy && err !== null && typeof err === 'object') {
          try {
            (err as { attempts?: number }).attempts = n;
          } catch {
            // frozen error
          }
        }
        throw err;
      }
      const delayMs = retryDelay(policy, n - 1);
      hooks.onRetry?.({ attempt: n, delayMs, error: err });
      await waitFor(delayMs, hooks.signal);
    }
  }
}
