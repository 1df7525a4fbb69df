/**
 * The Tx a callback receives, and the physical transaction behind it.
 *
 * State machine of a physical transaction:
 *   active → committing → committed | rolled_back | unknown
 *   active → aborted → rolled_back         (a statement error the backend cannot continue from)
 * A finished transaction, and a finished savepoint scope, refuse every call (E_TX_CLOSED).
 */
import { frameOf } from './context.js';
import {
  attachRollbackError,
  ConcurrentNestedTransactionError,
  InvalidArgumentError,
  RollbackOnlyError,
  TransactionAbortedError,
  TransactionClosedError,
  TransactionTimeoutError,
  TxkitError,
} from './errors.js';
import type { EventHub, RollbackReason, TxEvents } from './events.js';
import { assertIdentifier } from './identifier.js';
import type { Metrics } from './metrics.js';
import type {
  ExecuteResult,
  IsolationLevel,
  Params,
  Resource,
  ResourceTx,
  StatementCallback,
} from './resource.js';
import { type SavepointEntry, SavepointStack } from './savepoint-stack.js';

export type TxState = 'active' | 'aborted' | 'committing' | 'committed' | 'rolled_back' | 'unknown';

/** What a transaction needs from the database that owns it. */
export interface Engine {
  /** Key of the ambient context (the Database instance). */
  readonly key: object;
  readonly resource: Resource;
  readonly events: EventHub<TxEvents>;
  readonly metrics: Metrics;
  readonly slowThresholdMs: number;
  readonly maxNestingDepth: number;
}

type HookKind = 'beforeCommit' | 'afterCommit' | 'afterRollback';
interface Hook {
  kind: HookKind;
  cb: () => unknown;
}

/** A savepoint made with `tx.savepoint()`. */
export interface Savepoint {
  readonly name: string;
  /** `ROLLBACK TO` this savepoint: undoes later work, keeps the savepoint. */
  rollback(): Promise<void>;
  /** `RELEASE` this savepoint (and every later one). */
  release(): Promise<void>;
}

export interface ScopeInfo {
  depth: number;
  savepoint: string | undefined;
  startedAt: number;
}

const ignore = () => {};

/** A statement's promise that knows whether the caller ever awaited (or attached a handler to) it. */
class StatementPromise<T> extends Promise<T> {
  // A data property, not a getter: then() looks it up on every call.
  static override readonly [Symbol.species] = Promise;
  observed = false;
  // biome-ignore lint/suspicious/noThenProperty: observing then() is the point of this class
  override then<A = T, B = never>(
    onFulfilled?: ((value: T) => A | PromiseLike<A>) | null,
    onRejected?: ((reason: unknown) => B | PromiseLike<B>) | null,
  ): Promise<A | B> {
    this.observed = true;
    return super.then(onFulfilled, onRejected);
  }
}

let txCounter = 0;
const TX_PREFIX = Math.random().toString(36).slice(2, 8);
export const newTxId = (): string => `${TX_PREFIX}-${(++txCounter).toString(36)}`;

/** One BEGIN … COMMIT/ROLLBACK on one connection. */
export class PhysicalTransaction {
  state: TxState = 'active';
  #savepoints: SavepointStack | undefined;
  /** Live savepoints (allocated on first use: most transactions never make one). */
  get savepoints(): SavepointStack {
    this.#savepoints ??= new SavepointStack();
    return this.#savepoints;
  }
  readonly hooks: Hook[] = [];
  /** Statements in flight: commit waits until this is 0 again. */
  #inFlight = 0;
  /** Resolved when #inFlight drops to 0; created only when someone waits for that. */
  #idle: { promise: Promise<void>; resolve: () => void } | undefined;
  /** Failed statements; the ones the caller never awaited fail the commit. */
  #failures: { statement: StatementPromise<unknown>; err: unknown }[] | undefined;
  /** The innermost open scope: only it may run statements or open a nested scope. */
  innermost!: Transaction;
  /** setRollbackOnly(): roll back at the end without an error. */
  rollbackOnly = false;
  /** A joined scope failed: the transaction can only roll back. */
  innerFailure: unknown;
  /** Depth of the scope that failed; rolling back a savepoint at or above it clears the failure. */
  innerFailureDepth: number | undefined;
  /** The statement error that aborted the transaction. */
  abortCause: TxkitError | undefined;
  /** Why the transaction ended early (deadline, signal): calls then throw this instead of E_TX_CLOSED. */
  endedBy: TxkitError | undefined;
  savepointCounter = 0;
  /** Absolute deadline (performance.now() clock) when `timeoutMs` applies. */
  deadline: number | undefined;
  timeoutMs: number | undefined;
  /** This transaction's own `slowThresholdMs` option (else the database's). */
  slowThresholdMs: number | undefined;
  readonly startedAt = performance.now();
  /** The resource aborts the transaction on any failed statement (capability). */
  readonly #failureAborts: boolean;

  constructor(
    readonly engine: Engine,
    readonly handle: ResourceTx,
    readonly id: string,
    readonly name: string | undefined,
    readonly attempt: number,
  ) {
    this.#failureAborts = engine.resource.capabilities.statementErrorAbortsTransaction;
  }

  /** The error a deadline produces. */
  timeout(): TransactionTimeoutError {
    return new TransactionTimeoutError(
      `transaction ${this.id}${this.name ? ` (${this.name})` : ''} exceeded its ${this.timeoutMs} ms deadline and was rolled back`,
      { txId: this.id, ...(this.name !== undefined ? { txName: this.name } : {}) },
    );
  }

  get finished(): boolean {
    return this.state === 'committed' || this.state === 'rolled_back' || this.state === 'unknown';
  }

  /**
   * Tracks a statement so that commit waits for it, and so that a failure nobody awaited
   * rolls the transaction back instead of being committed around.
   */
  track<T>(p: Promise<T>): Promise<T> {
    const { statement, done } = this.#open<T>(this.#failureAborts);
    p.then(
      (value) => done(null, value),
      (err: unknown) =>
        done(
          err === null || err === undefined
            ? new Error('statement rejected without a reason')
            : (err as Error),
        ),
    );
    return statement;
  }

  /** A statement the resource completes through a callback (`ResourceTx.queryCb`/`executeCb`). */
  send<T>(start: (done: StatementCallback<T>) => void): Promise<T> {
    const { statement, done } = this.#open<T>(this.#failureAborts);
    try {
      start(done);
      return statement;
    } catch (thrown) {
      const err = (thrown ?? new Error('statement failed without a reason')) as Error;
      if (!this.#failureAborts) {
        done(err);
        return statement;
      }
      // Refused before anything was sent: the server transaction is intact and goes on, so
      // a failure nobody awaits must stop the commit by itself.
      this.#settled(); // the first promise is dropped unsettled: nothing will complete it
      const refused = this.#open<T>(false);
      refused.done(err);
      return refused.statement;
    }
  }

  /**
   * The promise a statement returns and the one completion that settles it: no promise
   * or reaction of the engine's own besides (each costs an AsyncLocalStorage init hook).
   * `failureAborts`: a failure will abort the transaction, which then stops the commit by
   * itself; otherwise the promise notes whether the caller awaited it.
   */
  #open<T>(failureAborts: boolean): { statement: Promise<T>; done: StatementCallback<T> } {
    this.#inFlight++;
    let resolve!: (value: T) => void;
    let reject!: (err: unknown) => void;
    const executor = (res: (value: T) => void, rej: (err: unknown) => void) => {
      resolve = res;
      reject = rej;
    };
    // Where any failed statement aborts the transaction, the abort itself stops the commit:
    // no need to learn whether the caller awaited, and a native promise is awaited in one tick.
    const statement = failureAborts ? new Promise<T>(executor) : new StatementPromise<T>(executor);
    let settled = false;
    const done: StatementCallback<T> = (err, value) => {
      if (settled) return; // a resource calling back twice must not unbalance the in-flight count
      settled = true;
      if (err === null) {
        this.#settled();
        resolve(value as T);
        return;
      }
      if (!failureAborts) {
        this.#failures ??= [];
        this.#failures.push({ statement: statement as StatementPromise<unknown>, err });
      }
      // Handled internally (no unhandled rejection) without counting as the caller observing it.
      if (!(statement as StatementPromise<T>).observed)
        Promise.prototype.then.call(statement, undefined, ignore);
      try {
        this.statementFailed(err, failureAborts);
      } finally {
        // Even if classifying threw: commit must not wait forever for this statement.
        this.#settled();
        reject(err);
      }
    };
    return { statement, done };
  }

  #settled(): void {
    if (--this.#inFlight === 0 && this.#idle) {
      this.#idle.resolve();
      this.#idle = undefined;
    }
  }

  /**
   * Runs a synchronous statement; a failure is tracked like an asynchronous one, and
   * recorded at once: a statement started in the same tick must already see the abort.
   */
  settle<T>(run: () => T): Promise<T> {
    try {
      return Promise.resolve(run());
    } catch (err) {
      const { statement, done } = this.#open<T>(this.#failureAborts);
      done((err ?? new Error('statement failed without a reason')) as Error);
      return statement;
    }
  }

  /** Records a failed statement; `aborts`: it aborts the transaction whatever the error. */
  statementFailed(err: unknown, aborts = false): void {
    if (err instanceof TxkitError) {
      err.txId ??= this.id;
      if (this.name !== undefined) err.txName ??= this.name;
    }
    if (this.state !== 'active') return;
    const classified = err instanceof TxkitError ? err : this.engine.resource.classify(err);
    if (aborts || !this.handle.usableAfterError(classified)) {
      this.state = 'aborted';
      this.abortCause = classified;
    }
  }

  /** True while a statement is in flight or a failure has not been looked at. */
  get unsettled(): boolean {
    return this.#inFlight > 0 || this.#failures !== undefined;
  }

  /** Waits for statements still in flight; returns the first failure nobody awaited. */
  async drain(): Promise<unknown> {
    while (this.#inFlight > 0) {
      if (!this.#idle) {
        let resolve!: () => void;
        const promise = new Promise<void>((res) => {
          resolve = res;
        });
        this.#idle = { promise, resolve };
      }
      await this.#idle.promise;
    }
    const failures = this.#failures;
    if (!failures) return undefined;
    this.#failures = undefined;
    return failures.find((f) => !f.statement.observed)?.err;
  }

  /** Removes the hooks registered after `mark`; runs their afterRollback hooks. */
  dropHooksAfter(mark: number): Promise<void> {
    const dropped = this.hooks.splice(mark);
    return this.runHooks(dropped, 'afterRollback');
  }

  async runHooks(hooks: readonly Hook[], kind: 'afterCommit' | 'afterRollback'): Promise<void> {
    for (const hook of hooks) {
      if (hook.kind !== kind) continue;
      try {
        await hook.cb();
      } catch (error) {
        this.engine.events.emit('hook-error', {
          txId: this.id,
          name: this.name,
          resource: this.engine.resource.kind,
          hook: kind,
          error,
        });
      }
    }
  }

  /** Runs beforeCommit hooks, including ones they register themselves. */
  async runBeforeCommit(): Promise<void> {
    const done = new Set<Hook>();
    for (;;) {
      const next = this.hooks.find((h) => h.kind === 'beforeCommit' && !done.has(h));
      if (!next) return;
      done.add(next);
      await next.cb();
    }
  }

  /** Rolls back the physical transaction; never throws. Returns the rollback failure, if any. */
  async rollback(
    reason: RollbackReason,
    error: unknown,
    runAfterRollback: boolean,
    alreadyRolledBack = false,
  ): Promise<unknown> {
    if (this.finished) return undefined;
    let rollbackError: unknown;
    if (!alreadyRolledBack) {
      try {
        await this.handle.rollback();
      } catch (e) {
        rollbackError = e;
        if (error !== undefined) attachRollbackError(error, e);
      }
    }
    this.state = 'rolled_back';
    this.#savepoints?.clear();
    const durationMs = performance.now() - this.startedAt;
    const { engine } = this;
    engine.metrics.finished('rolled_back', durationMs, reason);
    if (error !== undefined) engine.metrics.error(error);
    if (engine.events.wants('rollback')) {
      engine.events.emit('rollback', {
        txId: this.id,
        name: this.name,
        resource: engine.resource.kind,
        durationMs,
        reason,
        error,
        attempt: this.attempt,
      });
    }
    this.checkSlow(durationMs, 'rolled_back');
    const hooks = this.hooks.splice(0);
    if (runAfterRollback) await this.runHooks(hooks, 'afterRollback');
    return rollbackError;
  }

  /**
   * Sends COMMIT. Throws the classified error (state rolled_back, or unknown when in
   * doubt). `willRetry` tells whether a failed commit will be retried (then afterRollback
   * hooks are not run for this attempt).
   */
  commit(willRetry: (err: unknown) => boolean): Promise<void> {
    this.state = 'committing';
    let sent: Promise<void>;
    try {
      sent = Promise.resolve(this.handle.commit());
    } catch (raw) {
      sent = Promise.reject(raw);
    }
    // A plain reaction rather than an async function: one promise less per transaction.
    return sent.then(
      () => this.committed(),
      (raw: unknown) => this.commitFailed(raw, willRetry),
    );
  }

  /** @internal After COMMIT failed: classify, do the bookkeeping, throw the classified error. */
  async commitFailed(raw: unknown, willRetry: (err: unknown) => boolean): Promise<never> {
    const { engine } = this;
    const err = engine.resource.classify(raw);
    err.txId ??= this.id;
    const durationMs = performance.now() - this.startedAt;
    this.#savepoints?.clear();
    if (err.code === 'E_COMMIT_UNKNOWN') {
      this.state = 'unknown';
      engine.metrics.finished('unknown', durationMs);
      engine.metrics.error(err);
      engine.events.emit('unknown', {
        txId: this.id,
        name: this.name,
        resource: engine.resource.kind,
        durationMs,
        error: err,
      });
      this.hooks.length = 0;
      throw err;
    }
    this.state = 'active'; // the resource has rolled back already; do the bookkeeping
    await this.rollback('error', err, !willRetry(err), true);
    throw err;
  }

  /** @internal After the server acknowledged COMMIT. */
  committed(): void {
    const { engine } = this;
    this.state = 'committed';
    this.#savepoints?.clear();
    const durationMs = performance.now() - this.startedAt;
    engine.metrics.finished('committed', durationMs);
    if (engine.events.wants('commit')) {
      engine.events.emit('commit', {
        txId: this.id,
        name: this.name,
        resource: engine.resource.kind,
        durationMs,
        attempt: this.attempt,
      });
    }
    this.checkSlow(durationMs, 'committed');
  }

  checkSlow(durationMs: number, outcome: 'committed' | 'rolled_back'): void {
    const { engine } = this;
    const thresholdMs = this.slowThresholdMs ?? engine.slowThresholdMs;
    if (durationMs <= thresholdMs) return;
    engine.metrics.slow({ txId: this.id, name: this.name, durationMs, outcome, at: new Date() });
    engine.events.emit('slow', {
      txId: this.id,
      name: this.name,
      resource: engine.resource.kind,
      durationMs,
      thresholdMs,
    });
  }
}

/**
 * A transaction scope: the outermost transaction (depth 1) or a savepoint scope inside it.
 * This is the `tx` your callback receives.
 *
 * @example
 * await db.transaction(async (tx) => {
 *   await tx.execute('UPDATE accounts SET balance = balance - ? WHERE id = ?', [100, 1]);
 *   tx.afterCommit(() => sendReceipt());
 * });
 */
export class Transaction {
  #ended: 'committed' | 'rolled_back' | undefined;
  /** The outermost scope starts with its physical transaction (one clock read less per transaction). */
  readonly startedAt: number;

  /** @internal */
  constructor(
    /** @internal */ readonly physical: PhysicalTransaction,
    /** 1 for the outermost transaction, +1 per savepoint scope. */
    readonly depth: number,
    /** @internal */ readonly parent: Transaction | undefined,
    savepoint: SavepointEntry | undefined,
  ) {
    this.startedAt = depth === 1 ? physical.startedAt : performance.now();
    this.#savepoint = savepoint;
  }

  #savepoint: SavepointEntry | undefined;

  /** @internal The savepoint this nested scope runs in (undefined for the outermost transaction). */
  get savepointEntry(): SavepointEntry | undefined {
    return this.#savepoint;
  }

  /** @internal */
  bindSavepoint(entry: SavepointEntry): void {
    this.#savepoint = entry;
  }

  get id(): string {
    return this.physical.id;
  }

  get name(): string | undefined {
    return this.physical.name;
  }

  /** For a savepoint scope that has ended, `committed` means released into its parent. */
  get state(): TxState {
    return this.#ended ?? this.physical.state;
  }

  /** True while statements can still be sent through this scope (active or aborted). */
  get isOpen(): boolean {
    return this.#ended === undefined && !this.physical.finished && this.physical.state !== 'committing';
  }

  /** The isolation level the backend really runs this transaction at. */
  get isolation(): IsolationLevel {
    return this.physical.handle.isolation;
  }

  get readOnly(): boolean {
    return this.physical.handle.readOnly;
  }

  get rollbackOnly(): boolean {
    return this.physical.rollbackOnly;
  }

  /** @internal */
  end(outcome: 'committed' | 'rolled_back'): void {
    this.#ended = outcome;
  }

  /** @internal Throws unless this scope may send a statement now. */
  assertUsable(): void {
    const p = this.physical;
    if (this.#ended !== undefined || p.finished || p.state === 'committing') {
      throw (
        p.endedBy ??
        new TransactionClosedError(`transaction ${p.id} has ended (${this.state}); it refuses every call`, {
          txId: p.id,
        })
      );
    }
    if (p.deadline !== undefined && performance.now() >= p.deadline) {
      p.endedBy ??= p.timeout();
      throw p.endedBy;
    }
    if (p.state === 'aborted') {
      throw new TransactionAbortedError(
        `transaction ${p.id} was aborted by an earlier error; roll back (or back to a savepoint) first`,
        { txId: p.id, cause: p.abortCause },
      );
    }
    if (p.innerFailure !== undefined) {
      throw new RollbackOnlyError(`transaction ${p.id} can only roll back: a scope that joined it failed`, {
        txId: p.id,
        cause: p.innerFailure,
      });
    }
    // A nested scope is open. Code running inside it may still use a captured outer `tx`
    // (its statements belong to the nested scope); any other flow would interleave with it.
    if (p.innermost !== this && frameOf(p.engine.key).tx !== p.innermost) {
      throw new ConcurrentNestedTransactionError(
        `a nested scope of transaction ${p.id} is open; statements must go through the innermost scope ` +
          '(do not run sibling nested scopes or statements concurrently)',
        { txId: p.id },
      );
    }
  }

  /** Runs a statement that returns rows. */
  query<T = Record<string, unknown>>(sql: string, params?: Params): Promise<T[]> {
    try {
      this.assertUsable();
    } catch (err) {
      return Promise.reject(err);
    }
    const { handle } = this.physical;
    if (handle.querySync) return this.physical.settle(() => handle.querySync!<T>(sql, params));
    if (handle.queryCb) return this.physical.send<T[]>((done) => handle.queryCb!<T>(sql, params, done));
    return this.physical.track(handle.query<T>(sql, params));
  }

  /** Runs a statement for its effect: rows affected and, where reported, the last inserted id. */
  execute(sql: string, params?: Params): Promise<ExecuteResult> {
    try {
      this.assertUsable();
    } catch (err) {
      return Promise.reject(err);
    }
    const { handle } = this.physical;
    if (handle.executeSync) return this.physical.settle(() => handle.executeSync!(sql, params));
    if (handle.executeCb)
      return this.physical.send<ExecuteResult>((done) => handle.executeCb!(sql, params, done));
    return this.physical.track(handle.execute(sql, params));
  }

  /** Registers a callback that runs inside the transaction just before COMMIT; its failure rolls back. */
  beforeCommit(cb: () => unknown): void {
    this.#hook('beforeCommit', cb);
  }

  /**
   * Registers a callback that runs once after the outermost COMMIT succeeded. Dropped if
   * this scope rolls back. Its failure is reported as a `hook-error` event and never changes
   * the outcome. Not durable: a crash right after COMMIT loses it (use an outbox for that).
   */
  afterCommit(cb: () => unknown): void {
    this.#hook('afterCommit', cb);
  }

  /**
   * Registers a callback that runs after the work of this scope was rolled back: after the
   * savepoint rollback for a nested scope, or after the final rollback of the transaction
   * (not for attempts that are retried).
   */
  afterRollback(cb: () => unknown): void {
    this.#hook('afterRollback', cb);
  }

  #hook(kind: HookKind, cb: () => unknown): void {
    if (typeof cb !== 'function') throw new InvalidArgumentError(`${kind} needs a function`);
    const p = this.physical;
    if (this.#ended !== undefined || p.finished || (p.state === 'committing' && kind === 'beforeCommit')) {
      throw new TransactionClosedError(`transaction ${p.id} has ended; cannot register ${kind}`, {
        txId: p.id,
      });
    }
    p.hooks.push({ kind, cb });
  }

  /** Marks the transaction to roll back at its end, without an error: the callback's value is still returned. */
  setRollbackOnly(): void {
    this.assertNotEnded();
    this.physical.rollbackOnly = true;
  }

  /**
   * Makes a savepoint. Names are validated (letters, digits, underscore) and quoted; by
   * default they are `sp_<n>`. Prefer `db.transaction()` inside the callback (a nested
   * scope) unless you need to roll back to a point yourself.
   */
  async savepoint(name?: string): Promise<Savepoint> {
    this.assertUsable();
    const p = this.physical;
    if (name !== undefined) {
      assertIdentifier(name, 'savepoint name');
      if (p.savepoints.hasName(name)) {
        throw new InvalidArgumentError(
          `savepoint "${name}" already exists in this transaction; names must be unique`,
        );
      }
    }
    const spName = name ?? `sp_${++p.savepointCounter}`;
    await p.track(p.handle.savepoint(spName));
    const entry = p.savepoints.push(spName, p.hooks.length);
    this.emitSavepoint(spName, 'create');
    return {
      name: spName,
      rollback: async () => {
        this.assertNotEnded();
        p.savepoints.assertLive(entry);
        if (p.finished) throw new TransactionClosedError(`transaction ${p.id} has ended`, { txId: p.id });
        await p.handle.rollbackTo(spName);
        p.savepoints.rolledBackTo(entry);
        if (p.state === 'aborted') {
          p.state = 'active';
          p.abortCause = undefined;
        }
        this.emitSavepoint(spName, 'rollback');
        await p.dropHooksAfter(entry.hookMark);
      },
      release: async () => {
        this.assertUsable();
        p.savepoints.assertLive(entry);
        await p.track(p.handle.release(spName));
        p.savepoints.released(entry);
        this.emitSavepoint(spName, 'release');
      },
    };
  }

  /** @internal */
  assertNotEnded(): void {
    const p = this.physical;
    if (this.#ended !== undefined || p.finished || p.state === 'committing') {
      throw (
        p.endedBy ??
        new TransactionClosedError(`transaction ${p.id} has ended; it refuses every call`, { txId: p.id })
      );
    }
  }

  /** @internal */
  emitSavepoint(savepoint: string, action: 'create' | 'release' | 'rollback'): void {
    const { engine } = this.physical;
    if (!engine.events.wants('savepoint')) return;
    engine.events.emit('savepoint', {
      txId: this.id,
      name: this.name,
      resource: engine.resource.kind,
      savepoint,
      action,
      depth: this.depth,
    });
  }

  /** The open scopes from the outermost to this one, for debugging. */
  scopes(): ScopeInfo[] {
    const out: ScopeInfo[] = [];
    for (let s: Transaction | undefined = this; s; s = s.parent) {
      out.unshift({ depth: s.depth, savepoint: s.savepointEntry?.name, startedAt: s.startedAt });
    }
    return out;
  }
}

/** The public name of a transaction scope. */
export type Tx = Transaction;
