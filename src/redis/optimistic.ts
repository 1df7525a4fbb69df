/**
 * Optimistic transactions: WATCH the keys, read them, decide, then MULTI/EXEC, all on one
 * leased dedicated connection. EXEC returning nil means a watched key changed: nothing was
 * applied and the attempt is retried with backoff and jitter.
 *
 * An attempt is *voided* (and retried) when its connection closed between WATCH and EXEC:
 * a reconnected socket has no WATCH, so EXEC would run unguarded. txkit's dedicated
 * connections never reconnect, and the runner also checks the socket's close count before
 * sending EXEC.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { ConnectionLostError, InvalidArgumentError, InvalidOptionError } from '../core/errors.js';
import { type RetryPolicy, resolveRetry, withRetry } from '../core/retry.js';
import { CommandBuilder, keysOf, makeCommand, type RedisArg } from './commands.js';
import { canWrite, epochOf } from './connection.js';
import type { RedisContext } from './context.js';
import {
  type CommandReply,
  isReplyError,
  RedisReplyError,
  TransactionOutcomeUnknownError,
  WatchConflictError,
} from './errors.js';
import { execTransaction } from './exec-transaction.js';
import { commonSlot } from './key-slot.js';
import { WatchedReader } from './watched-reader.js';

/** What the body returns to write: a function that queues the commands. */
export type Ops = (m: CommandBuilder) => void;

const ABORT = Symbol('txkit.redis.abort');

/** Returned by a body that decides not to write (e.g. a condition is false). */
export interface Abort<T> {
  readonly [ABORT]: true;
  readonly reason: string;
  readonly value: T | undefined;
}

/**
 * Ends an optimistic attempt without writing: the runner sends UNWATCH and returns
 * `{status: 'aborted', reason, value}`.
 */
export function abort<T = undefined>(reason: string, value?: T): Abort<T> {
  return { [ABORT]: true, reason, value };
}

function isAbort(v: unknown): v is Abort<unknown> {
  return typeof v === 'object' && v !== null && ABORT in v;
}

export type OptimisticResult<T = undefined> =
  | { status: 'committed'; replies: CommandReply[]; hasErrors: boolean; attempts: number }
  | { status: 'aborted'; reason: string; value: T | undefined; attempts: number }
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
   * Queue attempts on the same key set inside this process (default true): they would only
   * conflict with each other. WATCH still guards against every other writer.
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

class VoidedAttemptError extends ConnectionLostError {
  constructor(why: string, cause?: unknown) {
    super(`attempt voided: ${why}; the WATCH no longer guards this connection, nothing was sent`, {
      retryable: true,
      cause,
    });
  }
}

function checkKeys(keys: unknown): asserts keys is RedisArg[] {
  if (!Array.isArray(keys) || keys.length === 0) {
    throw new InvalidArgumentError(
      'optimistic(keys, …): keys must be a non-empty array of key names to WATCH',
    );
  }
  makeCommand('exists', keys);
}

/** Runs one optimistic transaction with retries. See `redisTx(...).optimistic`. */
export async function runOptimistic<T>(
  ctx: RedisContext,
  keys: RedisArg[],
  body: (read: WatchedReader) => Promise<Ops | Abort<T>> | Ops | Abort<T>,
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
  const policy = resolveRetry({ ...OPTIMISTIC_RETRY_DEFAULTS, ...options.retry, retryOn: retryable })!;
  const slot = ctx.isCluster ? commonSlot(keys) : undefined;
  const txId = randomUUID();
  const op = options.name ?? 'optimistic';
  const started = performance.now();
  let attempts = 0;

  const finish = (status: string) => {
    ctx.metrics.inc('redis_tx_total', { op, status });
    ctx.metrics.observe('redis_tx_attempts', attempts, { op });
    ctx.metrics.observe('redis_tx_duration_seconds', (performance.now() - started) / 1000, { op });
  };
  const report = (outcome: 'committed' | 'conflict' | 'voided' | 'aborted' | 'error' | 'unknown') => {
    if (ctx.events.wants('attempt'))
      ctx.events.emit('attempt', { txId, name: options.name, attempt: attempts, outcome });
  };

  const queueKey = options.localQueue === false ? undefined : keys.map(String).sort().join('\u0000');
  const attempt = (n: number): Promise<OptimisticResult<T>> =>
    queueKey === undefined ? attemptOnce(n) : ctx.serialize(queueKey, (done) => attemptOnce(n, done));

  /** `written` is called once EXEC is on the wire: the next queued attempt may start then. */
  const attemptOnce = async (n: number, written?: () => void): Promise<OptimisticResult<T>> => {
    attempts = n;
    const conn = await ctx.lease(slot, options.signal);
    // Set once the connection is known to hold no WATCH and no half-read reply.
    const state = { clean: false };
    try {
      return await attemptOn(conn, n, state, written);
    } catch (err) {
      if (err instanceof WatchConflictError) {
        ctx.metrics.inc('redis_tx_watch_conflicts_total', { op });
        report('conflict');
      } else if (err instanceof TransactionOutcomeUnknownError) {
        ctx.metrics.inc('redis_tx_outcome_unknown_total');
        report('unknown');
      } else report(retryable(err) ? 'voided' : 'error');
      throw err;
    } finally {
      ctx.release(conn, state.clean);
    }
  };

  const attemptOn = async (
    conn: Redis,
    n: number,
    state: { clean: boolean },
    written?: () => void,
  ): Promise<OptimisticResult<T>> => {
    const epoch = epochOf(conn);
    // WATCH is pipelined with the body's first reads: same connection, so it runs first.
    const watched = conn.call('watch', ...keys).then(
      () => undefined,
      (err: unknown) => err,
    );
    const reader = new WatchedReader(conn, n);
    let decision: Ops | Abort<T>;
    try {
      decision = await body(reader);
    } catch (err) {
      reader.close();
      await watched;
      if (reader.lostConnection) throw new VoidedAttemptError('the connection failed during reads', err);
      await conn.unwatch();
      state.clean = true;
      throw err;
    } finally {
      reader.close();
    }
    const watchErr = await watched;
    if (watchErr) {
      if (isReplyError(watchErr)) throw new RedisReplyError(watchErr);
      throw new VoidedAttemptError('WATCH got no reply', watchErr);
    }
    if (isAbort(decision)) {
      await conn.unwatch();
      state.clean = true;
      report('aborted');
      return {
        status: 'aborted',
        reason: decision.reason,
        value: decision.value as T | undefined,
        attempts: n,
      };
    }
    if (typeof decision !== 'function') {
      await conn.unwatch();
      state.clean = true;
      throw new InvalidArgumentError(
        'the optimistic body must return a function queueing commands, or abort(reason)',
      );
    }
    const builder = new CommandBuilder();
    decision(builder);
    if (ctx.isCluster) commonSlot([...keys, ...builder.queued.flatMap(keysOf)]);
    if (epochOf(conn) !== epoch || !canWrite(conn)) {
      throw new VoidedAttemptError('the connection closed between WATCH and EXEC');
    }
    const sent = execTransaction(conn, builder.queued); // writes synchronously, then awaits the reply
    // The next same-key attempt may WATCH now: its commands reach the server after this EXEC.
    written?.();
    const outcome = await sent;
    state.clean = true; // EXEC answered: the watches are cleared either way
    if (outcome.status === 'conflict') throw new WatchConflictError();
    report('committed');
    if (outcome.hasErrors) ctx.metrics.inc('redis_tx_partial_failures_total');
    return { ...outcome, attempts: n };
  };

  try {
    const result = await withRetry(policy, attempt, {
      ...(options.signal ? { signal: options.signal } : {}),
      onRetry: ({ attempt: a, delayMs, error }) => {
        if (ctx.events.wants('retry'))
          ctx.events.emit('retry', { txId, name: options.name, attempt: a, delayMs, error });
      },
    });
    finish(result.status);
    return result;
  } catch (err) {
    if (err instanceof WatchConflictError) {
      ctx.metrics.inc('redis_tx_conflict_exhausted_total', { op });
      ctx.events.emit('conflict-exhausted', { txId, name: options.name, attempts });
      finish('conflict-exhausted');
      return { status: 'conflict-exhausted', attempts };
    }
    finish(err instanceof TransactionOutcomeUnknownError ? 'unknown' : 'error');
    throw err;
  }
}
