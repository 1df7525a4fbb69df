/**
 * The one transaction runner behind db.transaction(), transactional() and @Transactional:
 * propagation against the ambient transaction, retry of the outermost attempt only,
 * deadlines and cancellation, savepoint scopes, hooks, events and metrics.
 */
import { commitOwned, failOwned, NEVER_RETRY, type OwnedScope, type WillRetry } from './completion.js';
import { type Frame, frameOf, runInFrame } from './context.js';
import {
  attachRollbackError,
  IllegalTransactionStateError,
  isRetryable,
  NestingDepthExceededError,
  TransactionCancelledError,
  TransactionRolledBackError,
  TxkitError,
} from './errors.js';
import { type ResolvedOptions, rollsBack } from './options.js';
import type { BeginRequest, ResourceTx } from './resource.js';
import { mayRetry, retryDelay, waitFor } from './retry.js';
import { type Engine, newTxId, PhysicalTransaction, type Transaction } from './transaction.js';

/** Creates the scope objects; a backend may use a subclass of Transaction with extra methods. */
export type ScopeFactory = new (
  physical: PhysicalTransaction,
  depth: number,
  parent: Transaction | undefined,
  savepoint: import('./savepoint-stack.js').SavepointEntry | undefined,
) => Transaction;

export interface RunnerEngine extends Engine {
  readonly Scope: ScopeFactory;
  /** How many transactions may be suspended in one async context (requires_new chains). */
  readonly maxSuspendedDepth: number;
}

export type Body<T> = (tx: Transaction | undefined) => T | Promise<T>;

const cancelled = (signal: AbortSignal) =>
  new TransactionCancelledError('the transaction was cancelled by its AbortSignal', { cause: signal.reason });

/** Runs `fn` under the propagation rules. The heart of every transactional entry point. */
export function runTransaction<T>(engine: RunnerEngine, fn: Body<T>, o: ResolvedOptions): Promise<T> {
  if (o.signal?.aborted) return Promise.reject(cancelled(o.signal));
  const frame = frameOf(engine.key);
  const current = frame.tx?.isOpen ? frame.tx : undefined;
  const propagation = o.propagation ?? (current ? 'nested' : 'required');
  switch (propagation) {
    case 'required':
      return current ? joinScope(current, fn, o) : runOwned(engine, fn, o, frame.suspended);
    case 'mandatory':
      if (current) return joinScope(current, fn, o);
      return Promise.reject(
        new IllegalTransactionStateError(
          `propagation 'mandatory'${o.name ? ` (${o.name})` : ''} needs an open transaction, and there is none`,
        ),
      );
    case 'supports':
      return current ? joinScope(current, fn, o) : runWithout(engine, frame.suspended, fn);
    case 'nested':
      return current ? runSavepointScope(engine, current, fn, o) : runOwned(engine, fn, o, frame.suspended);
    case 'requires_new':
      return current
        ? runSuspending(engine, frame, current, (suspended) => runOwned(engine, fn, o, suspended))
        : runOwned(engine, fn, o, frame.suspended);
    case 'not_supported':
      return current
        ? runSuspending(engine, frame, current, (suspended) => runWithout(engine, suspended, fn))
        : runWithout(engine, frame.suspended, fn);
    case 'never':
      if (current) {
        return Promise.reject(
          new IllegalTransactionStateError(
            `propagation 'never'${o.name ? ` (${o.name})` : ''} must not run inside a transaction, and transaction ${current.id} is open`,
          ),
        );
      }
      return runWithout(engine, frame.suspended, fn);
  }
}

/** The suspended chain once `current` is suspended too; throws past `maxSuspendedDepth`. */
export function suspend(engine: RunnerEngine, frame: Frame, current: Transaction): readonly ResourceTx[] {
  if (frame.suspended.length >= engine.maxSuspendedDepth) {
    throw new IllegalTransactionStateError(
      `${frame.suspended.length + 1} transactions would be suspended in one call chain (maxSuspendedDepth ` +
        `${engine.maxSuspendedDepth}); each holds a connection while it waits`,
    );
  }
  return [...frame.suspended, current.physical.handle];
}

function runSuspending<T>(
  engine: RunnerEngine,
  frame: Frame,
  current: Transaction,
  run: (suspended: readonly ResourceTx[]) => Promise<T>,
): Promise<T> {
  let suspended: readonly ResourceTx[];
  try {
    suspended = suspend(engine, frame, current);
  } catch (err) {
    return Promise.reject(err);
  }
  return run(suspended);
}

async function runWithout<T>(
  engine: RunnerEngine,
  suspended: readonly ResourceTx[],
  fn: Body<T>,
): Promise<T> {
  return runInFrame(engine.key, { tx: undefined, suspended }, () => fn(undefined));
}

/** `required`/`mandatory`/`supports` with a transaction: run in it; a failure marks it rollback-only. */
async function joinScope<T>(current: Transaction, fn: Body<T>, o: ResolvedOptions): Promise<T> {
  try {
    return await fn(current);
  } catch (err) {
    const p = current.physical;
    if (current.isOpen && p.innerFailure === undefined && rollsBack(o, err)) {
      p.innerFailure = err;
      p.innerFailureDepth = current.depth;
    }
    throw err;
  }
}

/** A nested scope: SAVEPOINT, then RELEASE on success or ROLLBACK TO + RELEASE on failure. */
async function runSavepointScope<T>(
  engine: RunnerEngine,
  parent: Transaction,
  fn: Body<T>,
  o: ResolvedOptions,
): Promise<T> {
  parent.assertUsable();
  const p = parent.physical;
  if (parent.depth + 1 > engine.maxNestingDepth) {
    throw new NestingDepthExceededError(
      `nesting depth ${parent.depth + 1} exceeds maxNestingDepth ${engine.maxNestingDepth} in transaction ${p.id}`,
      { txId: p.id },
    );
  }
  const name = `sp_${++p.savepointCounter}`;
  const child = new engine.Scope(p, parent.depth + 1, parent, undefined);
  p.innermost = child; // claimed synchronously: a concurrent sibling scope is refused
  try {
    await p.track(p.handle.savepoint(name));
  } catch (err) {
    p.innermost = parent;
    child.end('rolled_back');
    throw err;
  }
  const entry = p.savepoints.push(name, p.hooks.length);
  child.bindSavepoint(entry);
  child.emitSavepoint(name, 'create');
  let result: T;
  try {
    result = await runInFrame(engine.key, { tx: child, suspended: frameOf(engine.key).suspended }, () =>
      fn(child),
    );
    if (p.unsettled) {
      const pendingError = await p.drain();
      if (pendingError !== undefined) throw pendingError;
    }
    if (p.state === 'aborted') {
      throw new TransactionRolledBackError(
        'a statement in this nested scope failed and aborted the transaction (the callback caught it); ' +
          'the scope was rolled back to its savepoint',
        { txId: p.id, cause: p.abortCause, retryable: isRetryable(p.abortCause) },
      );
    }
  } catch (err) {
    if (!p.finished && (p.state === 'aborted' || rollsBack(o, err))) await rollbackScope(engine, child, err);
    else if (!p.finished) await releaseScope(engine, child, err);
    else closeScope(child, 'rolled_back');
    throw err;
  }
  await releaseScope(engine, child, undefined);
  return result;
}

function closeScope(child: Transaction, outcome: 'committed' | 'rolled_back'): void {
  child.end(outcome);
  if (child.parent && child.physical.innermost === child) child.physical.innermost = child.parent;
}

async function rollbackScope(engine: RunnerEngine, child: Transaction, err: unknown): Promise<void> {
  const p = child.physical;
  const entry = child.savepointEntry!;
  try {
    await p.handle.rollbackTo(entry.name);
    p.savepoints.rolledBackTo(entry);
    await p.handle.release(entry.name);
    p.savepoints.released(entry);
    if (p.state === 'aborted') {
      p.state = 'active';
      p.abortCause = undefined;
    }
    if (p.innerFailure !== undefined && (p.innerFailureDepth ?? 0) >= child.depth) p.innerFailure = undefined;
  } catch (e) {
    attachRollbackError(err, e);
    // The savepoint could not be restored: only a full rollback is safe now.
    p.state = 'aborted';
    p.abortCause = engine.resource.classify(e);
  }
  closeScope(child, 'rolled_back');
  child.emitSavepoint(entry.name, 'rollback');
  await p.dropHooksAfter(entry.hookMark);
}

async function releaseScope(engine: RunnerEngine, child: Transaction, original: unknown): Promise<void> {
  const p = child.physical;
  const entry = child.savepointEntry!;
  try {
    await p.track(p.handle.release(entry.name));
  } catch (e) {
    await rollbackScope(engine, child, original ?? e);
    throw original ?? e;
  }
  p.savepoints.released(entry);
  closeScope(child, 'committed');
  child.emitSavepoint(entry.name, 'release');
}

/** A new physical transaction owned by this call: the only place that retries. */
function runOwned<T>(
  engine: RunnerEngine,
  fn: Body<T>,
  o: ResolvedOptions,
  suspended: readonly ResourceTx[],
): Promise<T> {
  return o.retry
    ? runRetrying(engine, fn, o, suspended, o.retry)
    : attemptOwned(engine, fn, o, suspended, 1, NEVER_RETRY);
}

async function runRetrying<T>(
  engine: RunnerEngine,
  fn: Body<T>,
  o: ResolvedOptions,
  suspended: readonly ResourceTx[],
  policy: NonNullable<ResolvedOptions['retry']>,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    let decided: [unknown, boolean] | undefined;
    const willRetry: WillRetry = (err) => {
      if (decided?.[0] !== err) {
        decided = [err, !o.signal?.aborted && mayRetry(policy, err, attempt)];
      }
      return decided![1];
    };
    try {
      return await attemptOwned(engine, fn, o, suspended, attempt, willRetry);
    } catch (err) {
      if (!willRetry(err)) {
        if (err instanceof TxkitError || (err !== null && typeof err === 'object')) {
          try {
            (err as { attempts?: number }).attempts = attempt;
          } catch {
            // frozen error object
          }
        }
        throw err;
      }
      const delayMs = retryDelay(policy, attempt - 1);
      engine.metrics.retried();
      engine.events.emit('retry', {
        txId: err instanceof TxkitError && err.txId ? err.txId : '',
        name: o.name,
        resource: engine.resource.kind,
        attempt,
        delayMs,
        error: err,
      });
      await waitFor(delayMs, o.signal);
    }
  }
}

/**
 * One attempt: begin, run the body in the transaction's frame, commit or roll back. Kept
 * to a single async frame with as few awaits as the work needs: on asynchronous drivers
 * every promise (and every await) costs an AsyncLocalStorage hook.
 */
async function attemptOwned<T>(
  engine: RunnerEngine,
  fn: Body<T>,
  o: ResolvedOptions,
  suspended: readonly ResourceTx[],
  attempt: number,
  willRetry: WillRetry,
): Promise<T> {
  const txId = newTxId();
  const deadline = o.timeoutMs === undefined ? undefined : performance.now() + o.timeoutMs;
  let handle: ResourceTx;
  try {
    handle = await engine.resource.begin(beginRequest(txId, o, deadline, suspended));
  } catch (raw) {
    throw beginFailed(engine, raw);
  }
  const scope = openOwned(engine, handle, txId, o, deadline, suspended, attempt);
  const p = scope.physical;
  const root = scope.root;
  const frame: Frame = { tx: root, suspended };
  let result: T;
  let stop: (() => void) | undefined;
  try {
    if (deadline === undefined && !o.signal) {
      result = await runInFrame(engine.key, frame, () => fn(root));
    } else {
      // The body races the deadline/signal in one promise: whichever settles it first wins;
      // the body may still fail after an interruption won, which then changes nothing.
      result = await new Promise<T>((resolve, reject) => {
        // Armed before the body starts, so an abort during its synchronous part counts too.
        stop = armInterruption(p, o.signal, reject);
        let body: T | Promise<T>;
        try {
          body = runInFrame(engine.key, frame, () => fn(root));
        } catch (err) {
          reject(err);
          return;
        }
        if (body instanceof Promise) body.then(resolve, reject);
        else resolve(body);
      });
    }
  } catch (err) {
    stop?.();
    return failOwned(scope, o, err, willRetry);
  }
  stop?.();
  // The common case (nothing in flight, no hooks, no deadline, nothing that forbids the
  // commit) goes straight to COMMIT; commitOwned handles everything else.
  if (
    p.state === 'active' &&
    !p.unsettled &&
    p.hooks.length === 0 &&
    !p.rollbackOnly &&
    p.innerFailure === undefined &&
    p.endedBy === undefined &&
    (deadline === undefined || performance.now() < deadline)
  ) {
    // p.commit(), inlined: this frame awaits the driver itself.
    p.state = 'committing';
    try {
      await p.handle.commit();
    } catch (raw) {
      await p.commitFailed(raw, willRetry);
    }
    p.committed();
    // afterCommit hooks may still be registered while COMMIT is in flight.
    if (p.hooks.length > 0) await p.runHooks(p.hooks.splice(0), 'afterCommit');
  } else {
    await commitOwned(scope, o, willRetry);
  }
  return result;
}

function beginRequest(
  txId: string,
  o: ResolvedOptions,
  deadline: number | undefined,
  suspended: readonly ResourceTx[],
): BeginRequest {
  return {
    txId,
    name: o.name,
    isolation: o.isolation,
    readOnly: o.readOnly,
    deferrable: o.deferrable,
    deadline,
    suspended,
    extra: o.extra,
  };
}

function beginFailed(engine: RunnerEngine, raw: unknown): TxkitError {
  const err = engine.resource.classify(raw);
  engine.metrics.error(err);
  return err;
}

/** The physical transaction and its root scope, once the resource has begun. */
function openOwned(
  engine: RunnerEngine,
  handle: ResourceTx,
  txId: string,
  o: ResolvedOptions,
  deadline: number | undefined,
  suspended: readonly ResourceTx[],
  attempt: number,
): OwnedScope {
  const p = new PhysicalTransaction(engine, handle, txId, o.name, attempt);
  p.deadline = deadline;
  p.timeoutMs = o.timeoutMs;
  p.slowThresholdMs = o.slowThresholdMs;
  const root = new engine.Scope(p, 1, undefined, undefined);
  p.innermost = root;
  engine.metrics.started();
  if (engine.events.wants('begin')) {
    engine.events.emit('begin', {
      txId,
      name: o.name,
      resource: engine.resource.kind,
      isolation: handle.isolation,
      readOnly: handle.readOnly,
      attempt,
    });
  }
  return { physical: p, root, suspended };
}

/** Begins a physical transaction and its root scope (also used by manual db.begin()). */
export async function beginOwned(
  engine: RunnerEngine,
  o: ResolvedOptions,
  suspended: readonly ResourceTx[],
  attempt: number,
): Promise<OwnedScope> {
  const txId = newTxId();
  const deadline = o.timeoutMs === undefined ? undefined : performance.now() + o.timeoutMs;
  let handle: ResourceTx;
  try {
    handle = await engine.resource.begin(beginRequest(txId, o, deadline, suspended));
  } catch (raw) {
    throw beginFailed(engine, raw);
  }
  return openOwned(engine, handle, txId, o, deadline, suspended, attempt);
}

/**
 * Calls `reject` when the deadline passes or the signal fires while the transaction is
 * still running; the statement in flight is cancelled on the server. Returns `stop`.
 */
function armInterruption(
  p: PhysicalTransaction,
  signal: AbortSignal | undefined,
  reject: (err: TxkitError) => void,
): () => void {
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const interrupt = (err: TxkitError) => {
    if (p.state !== 'active' && p.state !== 'aborted') return; // committing or done: too late to matter
    p.endedBy = err;
    p.handle.cancel?.().catch(() => {});
    reject(err);
  };
  if (p.deadline !== undefined) {
    timer = setTimeout(() => interrupt(p.timeout()), Math.max(0, p.deadline - performance.now()));
  }
  if (signal) {
    onAbort = () => interrupt(cancelled(signal));
    if (signal.aborted)
      onAbort(); // aborted while the transaction was beginning
    else signal.addEventListener('abort', onAbort, { once: true });
  }
  return () => {
    if (timer) clearTimeout(timer);
    if (onAbort) signal?.removeEventListener('abort', onAbort);
  };
}

/** {@link armInterruption} as a promise (manual `db.begin()`). */
export function interruption(
  p: PhysicalTransaction,
  signal: AbortSignal | undefined,
): { promise: Promise<never>; stop: () => void } {
  let stop!: () => void;
  const promise = new Promise<never>((_, reject) => {
    stop = armInterruption(p, signal, reject);
  });
  promise.catch(() => {});
  return { promise, stop };
}
