/**
 * Retry presets for MySQL / MariaDB from the seed's numbers, as engine `RetryPolicy`
 * objects: pass one as `retry` to `db.transaction()`. The unit retried is always the
 * whole transaction, and only the outermost transaction retries.
 *
 * The seed adds `U(0, j)` to `base·2^n`; the engine's jitter is proportional (± ratio of
 * the delay), so each preset picks base and ratio to cover the seed's first delay exactly
 * and stays close after it (documented per preset).
 */
import { TxkitError } from '../../core/errors.js';
import type { RetryPolicy } from '../../core/retry.js';
import { classificationOf, type ErrorKind } from './errors.js';

/** The classified error itself, or the classified cause of an error the engine made from it. */
function classified(err: unknown, depth = 0): { kind: ErrorKind; retryable: boolean } | undefined {
  if (!(err instanceof TxkitError) || depth > 3) return undefined;
  const c = classificationOf(err);
  if (c) return { kind: c.kind, retryable: err.retryable };
  // e.g. TransactionAbortedError("refused after a deadlock", { cause: deadlock })
  return classified(err.cause, depth + 1);
}

/** Retries on these kinds only, and only when the error says re-running can help. */
export function retryOnKinds(kinds: readonly ErrorKind[]): (err: unknown) => boolean {
  const set = new Set(kinds);
  return (err) => {
    const c = classified(err);
    if (c === undefined || !set.has(c.kind)) return false;
    // A lock wait timeout is not flagged retryable (each attempt already waited); the preset opts in.
    return c.kind === 'lock_wait_timeout' || c.retryable;
  };
}

const LOCK_CONFLICTS = ['deadlock', 'snapshot_conflict'] as const;
const CONNECTION_FAILURES = ['connection_lost', 'connect_failed', 'too_many_connections'] as const;

/**
 * Deadlocks (1213) and MariaDB snapshot conflicts (1020): 4 attempts, delays 100–200 ms,
 * 200–400 ms, 400–800 ms (seed `retry_on_deadlock(3, 0.1)`: 100–200, 200–300, 400–500 ms).
 */
export const deadlockRetry: Readonly<RetryPolicy> = Object.freeze({
  maxAttempts: 4,
  baseDelayMs: 150,
  factor: 2,
  maxDelayMs: 2_000,
  jitter: 'proportional',
  jitterRatio: 1 / 3,
  retryOn: retryOnKinds(LOCK_CONFLICTS),
});

/**
 * Lock wait timeouts (1205) as well as deadlocks, but only one retry: every attempt has
 * already waited `innodb_lock_wait_timeout`. NOWAIT failures are not retried.
 */
export const lockTimeoutRetry: Readonly<RetryPolicy> = Object.freeze({
  ...deadlockRetry,
  maxAttempts: 2,
  retryOn: retryOnKinds([...LOCK_CONFLICTS, 'lock_wait_timeout']),
});

/**
 * Connection failures before COMMIT was sent, refused connects and "too many
 * connections": 6 attempts, delays 1.0–1.5 s, 2–3 s, 4–6 s, 8–12 s, 16–24 s (seed
 * `ConnectionRetryManager(5, 1.0)`: 1·2^n s + U(0, 0.5) s). A lost COMMIT is never retried.
 */
export const connectionRetry: Readonly<RetryPolicy> = Object.freeze({
  maxAttempts: 6,
  baseDelayMs: 1_250,
  factor: 2,
  maxDelayMs: 30_000,
  jitter: 'proportional',
  jitterRatio: 0.2,
  retryOn: retryOnKinds(CONNECTION_FAILURES),
});

/**
 * The seed's general `RetryConfig(3, 1.0, 60.0, 2.0, ±10%)`: 4 attempts, 1 s, 2 s, 4 s
 * (±10%), capped at 60 s, on deadlocks, snapshot conflicts and connection failures.
 * Too slow for lock conflicts: prefer {@link deadlockRetry} there.
 */
export const generalRetry: Readonly<RetryPolicy> = Object.freeze({
  maxAttempts: 4,
  baseDelayMs: 1_000,
  factor: 2,
  maxDelayMs: 60_000,
  jitter: 'proportional',
  jitterRatio: 0.1,
  retryOn: retryOnKinds([...LOCK_CONFLICTS, ...CONNECTION_FAILURES]),
});
