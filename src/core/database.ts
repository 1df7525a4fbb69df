/**
 * A Database: one resource (SQLite file, PostgreSQL pool, ...) driven by the engine.
 * Every backend factory (`sqlite()`, `postgres()`, `mysql()`) returns one of these.
 */
import { commitOwned, failOwned, NEVER_RETRY } from './completion.js';
import { frameOf } from './context.js';
import { DatabaseClosedError, InvalidOptionError } from './errors.js';
import { EventHub, type TxEvents } from './events.js';
import { Metrics, type MetricsSnapshot } from './metrics.js';
import {
  type NonTransactionalPropagation,
  type Propagation,
  resolveOptions,
  type TransactionOptions,
} from './options.js';
import type { Capabilities, ExecuteResult, Params, Resource } from './resource.js';
import {
  beginOwned,
  interruption,
  type RunnerEngine,
  runTransaction,
  type ScopeFactory,
  suspend,
} from './runner.js';
import { Transaction } from './transaction.js';

export interface DatabaseOptions {
  /** Transactions longer than this emit `slow` and enter the slow ring. Default 1000 ms. */
  slowThresholdMs?: number;
  /** Deepest allowed scope, counting the outermost transaction as 1. Default 3. */
  maxNestingDepth?: number;
  /** How many transactions one call chain may suspend (`requires_new`, `not_supported`). Default 2. */
  maxSuspendedDepth?: number;
}

/** Settings a backend passes when it builds its Database. */
export interface DatabaseInit<T extends Transaction> {
  /** Backend-specific transaction option names (validated by the backend in `begin`). */
  transactionOptionKeys?: readonly string[];
  /** A Transaction subclass with backend extras (e.g. PostgreSQL `notify`). */
  scope?: ScopeFactory & (new (...args: any[]) => T);
}

/** A manual transaction from `db.begin()`: you must commit or roll back (or `await using` it). */
export type ManualTransaction<T extends Transaction = Transaction> = T & {
  commit(): Promise<void>;
  rollback(): Promise<void>;
  /** Rolls back if neither commit nor rollback was called. */
  [Symbol.asyncDispose](): Promise<void>;
};

function positive(name: string, v: unknown, fallback: number, integer: boolean): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0 || (integer && !Number.isInteger(v))) {
    throw new InvalidOptionError(
      `${name} must be a ${integer ? 'positive integer' : 'positive number'}, got ${String(v)}`,
    );
  }
  return v;
}

export class Database<R extends Resource = Resource, T extends Transaction = Transaction> {
  readonly #engine: RunnerEngine;
  readonly #metrics = new Metrics();
  readonly #events = new EventHub<TxEvents>();
  readonly #backendKeys: ReadonlySet<string>;
  #closed = false;

  constructor(
    readonly resource: R,
    options: DatabaseOptions = {},
    init: DatabaseInit<T> = {},
  ) {
    const known = new Set(['slowThresholdMs', 'maxNestingDepth', 'maxSuspendedDepth']);
    for (const key of Object.keys(options)) {
      if (!known.has(key)) {
        throw new InvalidOptionError(`unknown database option '${key}'; allowed: ${[...known].join(', ')}`);
      }
    }
    this.#backendKeys = new Set(init.transactionOptionKeys ?? []);
    this.#engine = {
      key: this,
      resource,
      events: this.#events,
      metrics: this.#metrics,
      slowThresholdMs: positive('slowThresholdMs', options.slowThresholdMs, 1000, false),
      maxNestingDepth: positive('maxNestingDepth', options.maxNestingDepth, 3, true),
      maxSuspendedDepth: positive('maxSuspendedDepth', options.maxSuspendedDepth, 2, true),
      Scope: init.scope ?? Transaction,
    };
  }

  /** Per isolation level, what the backend really gives; plus savepoints, read-only, two-phase. */
  get capabilities(): Capabilities {
    return this.resource.capabilities;
  }

  /**
   * Runs `fn` in a transaction: commits when it resolves, rolls back and rethrows the
   * original error when it throws. Inside another transaction of this database it
   * becomes a savepoint scope unless `propagation` says otherwise.
   *
   * @example
   * const total = await db.transaction(async (tx) => {
   *   await tx.execute('UPDATE accounts SET balance = balance - ? WHERE id = ?', [100, 1]);
   *   await tx.execute('UPDATE accounts SET balance = balance + ? WHERE id = ?', [100, 2]);
   *   return (await tx.query<{ s: number }>('SELECT sum(balance) AS s FROM accounts'))[0]!.s;
   * }, { retry: true, timeoutMs: 2_000 });
   */
  transaction<V>(
    fn: (tx: T | undefined) => V | Promise<V>,
    options: TransactionOptions & { propagation: NonTransactionalPropagation },
  ): Promise<V>;
  transaction<V>(
    fn: (tx: T) => V | Promise<V>,
    options?: TransactionOptions & { propagation?: Exclude<Propagation, NonTransactionalPropagation> },
  ): Promise<V>;
  transaction<V>(fn: (tx: any) => V | Promise<V>, options?: TransactionOptions): Promise<V> {
    if (this.#closed) return Promise.reject(this.#closedError());
    if (typeof fn !== 'function')
      return Promise.reject(new InvalidOptionError('transaction() needs a function'));
    let o: ReturnType<typeof resolveOptions>;
    try {
      o = resolveOptions(options, this.#backendKeys);
    } catch (err) {
      return Promise.reject(err);
    }
    return runTransaction(this.#engine, fn, o);
  }

  /**
   * Begins a transaction you end yourself. It does not become the ambient transaction:
   * run its statements through the returned object. No retry (nothing to re-run).
   *
   * @example
   * await using tx = await db.begin();
   * await tx.execute('INSERT INTO log(msg) VALUES (?)', ['hello']);
   * await tx.commit(); // without it, leaving the block rolls back
   */
  async begin(options?: TransactionOptions): Promise<ManualTransaction<T>> {
    if (this.#closed) throw this.#closedError();
    const o = resolveOptions(options, this.#backendKeys);
    if (o.retry)
      throw new InvalidOptionError('retry cannot apply to db.begin(): there is no callback to re-run');
    if (o.propagation !== undefined) throw new InvalidOptionError('propagation does not apply to db.begin()');
    const frame = frameOf(this);
    const current = frame.tx?.isOpen ? frame.tx : undefined;
    const suspended = current ? suspend(this.#engine, frame, current) : frame.suspended;
    const scope = await beginOwned(this.#engine, o, suspended, 1);
    const p = scope.physical;
    let stop: (() => void) | undefined;
    if (p.deadline !== undefined || o.signal) {
      const interrupted = interruption(p, o.signal);
      stop = interrupted.stop;
      interrupted.promise.catch((err) => failOwned(scope, o, err, NEVER_RETRY).catch(() => {}));
    }
    const root = scope.root as T;
    return Object.assign(root, {
      commit: async () => {
        root.assertNotEnded();
        stop?.();
        await commitOwned(scope, o, NEVER_RETRY);
      },
      rollback: async () => {
        root.assertNotEnded();
        stop?.();
        await p.rollback('manual', undefined, true);
      },
      [Symbol.asyncDispose]: async () => {
        stop?.();
        if (!p.finished && p.state !== 'committing') await p.rollback('manual', undefined, true);
      },
    });
  }

  /** Runs a query in the ambient transaction of this database, or in autocommit outside one. */
  query<V = Record<string, unknown>>(sql: string, params?: Params): Promise<V[]> {
    const frame = frameOf(this);
    if (frame.tx?.isOpen) return frame.tx.query<V>(sql, params);
    if (this.#closed) return Promise.reject(this.#closedError());
    return this.resource.query<V>(sql, params, frame);
  }

  /** Runs a statement in the ambient transaction of this database, or in autocommit outside one. */
  execute(sql: string, params?: Params): Promise<ExecuteResult> {
    const frame = frameOf(this);
    if (frame.tx?.isOpen) return frame.tx.execute(sql, params);
    if (this.#closed) return Promise.reject(this.#closedError());
    return this.resource.execute(sql, params, frame);
  }

  /**
   * Listens to engine events (`begin`, `commit`, `rollback`, `retry`, `slow`, `unknown`,
   * `savepoint`, `hook-error`, `error`). The same events are published on
   * `node:diagnostics_channel` as `txkit:<event>`. Returns an unsubscribe function.
   */
  on<K extends keyof TxEvents>(event: K, listener: (payload: TxEvents[K]) => void): () => void {
    return this.#events.on(event, listener);
  }

  /** A snapshot of this database's bounded metrics. */
  metrics(): MetricsSnapshot {
    return this.#metrics.snapshot();
  }

  resetMetrics(): void {
    this.#metrics.reset();
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Closes the resource. Transactions still running finish with errors from the closed connection. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.resource.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #closedError(): DatabaseClosedError {
    return new DatabaseClosedError(`this ${this.resource.kind} database has been closed`);
  }
}
