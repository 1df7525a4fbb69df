/**
 * Optimistic transactions: WATCH the keys, read them, decide, then MULTI/EXEC, all on one
 * leased dedicated connection. EXEC returning nil means a watched key changed: nothing was
 * applied and the attempt is retried with backoff and jitter.
 *
 * Attempts on the same keys in one process queue in a lane and commit in rounds (one
 * WATCH, one EXEC for all waiting attempts; see `optimistic-round.ts`), so a hot key costs
 * one round trip per round instead of two per update.
 *
 * An attempt is *voided* (and retried) when its connection closed between WATCH and EXEC:
 * a reconnected socket has no WATCH, so EXEC would run unguarded. txkit's dedicated
 * connections never reconnect, and the runner also checks the socket's close count before
 * sending EXEC.
 */
import { randomUUID } from 'node:crypto';
import { ConnectionLostError, InvalidArgumentError, InvalidOptionError } from '../core/errors.js';
import { type RetryPolicy, resolveRetry, withRetry } from '../core/retry.js';
import { checkArg, type RedisArg } from './commands.js';
import type { RedisContext } from './context.js';
import { TransactionOutcomeUnknownError, WatchConflictError } from './errors.js';
import { commonSlot } from './key-slot.js';
import {
  type AttemptOutcome,
  type AttemptRequest,
  type Body,
  cancelledBeforeRun,
  runRound,
  VoidedAttemptError,
} from './optimistic-round.js';
import { keyId } from './write-overlay.js';

export { type Abort, abort, type Ops } from './optimistic-round.js';

export type OptimisticResult<T = undefined> =
  | AttemptOutcome<T>
  | { status: 'conflict-exhausted'; attempts: number };

export interface OptimisticOptions {
  /** Names the operation in events and metrics (keep it low-cardinality). */
  name?: string;
  /**
   * Backoff on conflict. Defaults: `maxAttempts` 5 (total tries), `baseDelayMs` 10,
   * `factor` 2, `maxDelayMs` 1000, `jitter` 'full'. Conflicts and voided attempts are retried;
   * `retryOn` is not accepted here.
   */
  retry?: Omit<RetryPolicy, 'retryOn'>;
  signal?: AbortSignal;
  /**
   * Queue attempts on the same key set inside this process and commit the waiting ones
   * together, one WATCH and one MULTI/EXEC per round (default true): they would only
   * conflict with each other. A body sees what earlier bodies of its round write; WATCH
   * still guards the round against every other writer.
   */
  localQueue?: boolean;
}

/** The spec's defaults for the optimistic runner. */
export const OPTIMISTIC_RETRY_DEFAULTS = Object.freeze({
  maxAttempts: 5,
  baseDelayMs: 10,
  factor: 2,
  maxDelayMs: 1000,
  jitter: 'full' as const,
});

const retryable = (err: unknown) =>
  err instanceof WatchConflictError || (err instanceof ConnectionLostError && err.retryable);

/** The policy most calls use, resolved once. */
const DEFAULT_POLICY = resolveRetry({ ...OPTIMISTIC_RETRY_DEFAULTS, retryOn: retryable })!;

function checkKeys(keys: unknown): asserts keys is RedisArg[] {
  if (!Array.isArray(keys) || keys.length === 0) {
    throw new InvalidArgumentError(
      'optimistic(keys, …): keys must be a non-empty array of key names to WATCH',
    );
  }
  for (let i = 0; i < keys.length; i++) checkArg('optimistic keys', keys[i], i);
}

/** Attempts on the same key set share a lane, whatever the order the keys were given in. */
function laneKey(keys: readonly RedisArg[]): string {
  if (keys.length === 1) return `1${keyId(keys[0]!)}`;
  return `n${JSON.stringify(keys.map(keyId).sort())}`;
}

/** Runs one optimistic transaction with retries. See `redisTx(...).optimistic`. */
export async function runOptimistic<T>(
  ctx: RedisContext,
  keys: RedisArg[],
  body: Body<T>,
  options: OptimisticOptions = {},
): Promise<OptimisticResult<T>> {
  checkKeys(keys);
  if (typeof body !== 'function')
    throw new InvalidArgumentError('optimistic(keys, body): body must be a function');
  if (options.retry && 'retryOn' in options.retry) {
    throw new InvalidOptionError(
      'optimistic: retry.retryOn is not accepted; conflicts and voided attempts are retried',
    );
  }
  if (options.localQueue !== undefined && typeof options.localQueue !== 'boolean') {
    throw new InvalidOptionError(
      `optimistic: localQueue must be true or false, got ${String(options.localQueue)}`,
    );
  }
  const policy = options.retry
    ? resolveRetry({ ...OPTIMISTIC_RETRY_DEFAULTS, ...options.retry, retryOn: retryable })!
    : DEFAULT_POLICY;
  const slot = ctx.isCluster ? commonSlot(keys) : undefined;
  let id: string | undefined; // only events need it
  const txId = () => (id ??= randomUUID());
  const op = options.name ?? 'optimistic';
  const started = performance.now();
  let attempts = 0;

  const finish = (status: string) => {
    ctx.metrics.inc2('redis_tx_total', 'op', op, 'status', status);
    ctx.metrics.observe('redis_tx_attempts', attempts, op);
    ctx.metrics.observe('redis_tx_duration_seconds', (performance.now() - started) / 1000, op);
  };
  const report = (outcome: 'committed' | 'conflict' | 'voided' | 'aborted' | 'error' | 'unknown') => {
    if (ctx.events.wants('attempt'))
      ctx.events.emit('attempt', { txId: txId(), name: options.name, attempt: attempts, outcome });
  };

  const queueKey = options.localQueue === false ? undefined : laneKey(keys);
  const failed = (err: unknown): never => {
    if (err instanceof WatchConflictError) {
      ctx.metrics.inc('redis_tx_watch_conflicts_total', { op });
      report('conflict');
    } else if (err instanceof TransactionOutcomeUnknownError) {
      ctx.metrics.inc('redis_tx_outcome_unknown_total');
      report('unknown');
    } else report(retryable(err) ? 'voided' : 'error');
    throw err;
  };
  const succeeded = (outcome: AttemptOutcome<T>): OptimisticResult<T> => {
    report(outcome.status);
    if (outcome.status === 'committed' && outcome.hasErrors)
      ctx.metrics.inc('redis_tx_partial_failures_total');
    return outcome;
  };
  const attempt = (n: number): Promise<OptimisticResult<T>> => {
    attempts = n;
    return new Promise<AttemptOutcome<T>>((resolve, reject) => {
      const { signal } = options;
      if (signal?.aborted) {
        reject(cancelledBeforeRun(signal));
        return;
      }
      if (queueKey === undefined) {
        runAlone(ctx, keys, slot, { body, attempt: n, signal, resolve, reject });
        return;
      }
      const lane = ctx.lane(queueKey, keys, slot);
      if (!signal) {
        lane.submit({ body, attempt: n, signal, resolve, reject });
        return;
      }
      // Cancelling withdraws an attempt still waiting for its round; one whose body already
      // ran is decided by its round (it may commit).
      const onAbort = () => lane.withdraw(request, cancelledBeforeRun(signal));
      const request: AttemptRequest<T> = {
        body,
        attempt: n,
        signal,
        resolve: (outcome) => {
          signal.removeEventListener('abort', onAbort);
          resolve(outcome);
        },
        reject: (err) => {
          signal.removeEventListener('abort', onAbort);
          reject(err);
        },
      };
      signal.addEventListener('abort', onAbort, { once: true });
      lane.submit(request);
    }).then(succeeded, failed);
  };

  try {
    const result = await withRetry(policy, attempt, {
      ...(options.signal ? { signal: options.signal } : {}),
      onRetry: ({ attempt: a, delayMs, error }) => {
        if (ctx.events.wants('retry'))
          ctx.events.emit('retry', { txId: txId(), name: options.name, attempt: a, delayMs, error });
      },
    });
    finish(result.status);
    return result;
  } catch (err) {
    if (err instanceof WatchConflictError) {
      ctx.metrics.inc('redis_tx_conflict_exhausted_total', { op });
      ctx.events.emit('conflict-exhausted', { txId: txId(), name: options.name, attempts });
      finish('conflict-exhausted');
      return { status: 'conflict-exhausted', attempts };
    }
    finish(err instanceof TransactionOutcomeUnknownError ? 'unknown' : 'error');
    throw err;
  }
}

/** An attempt outside any lane (`localQueue: false`): a round of one on its own lease. */
function runAlone<T>(
  ctx: RedisContext,
  keys: readonly RedisArg[],
  slot: number | undefined,
  request: AttemptRequest<T>,
): void {
  ctx.lease(slot, request.signal).then(async (conn) => {
    const retryLater = (again: AttemptRequest<T>[]) => {
      for (const r of again) r.reject(new VoidedAttemptError('the round could not include it'));
    };
    ctx.release(conn, await runRound(ctx, conn, keys, [request], retryLater));
  }, request.reject);
}
