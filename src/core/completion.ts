/**
 * How an owned transaction ends — shared by the callback API and manual `db.begin()`:
 * wait for statements still in flight, refuse to commit work the backend already threw
 * away, run beforeCommit hooks, commit, then run afterCommit hooks.
 */
import { runInFrame } from './context.js';
import { isRetryable, TransactionRolledBackError, TransactionTimeoutError } from './errors.js';
import type { RollbackReason } from './events.js';
import { type ResolvedOptions, rollsBack } from './options.js';
import type { ResourceTx } from './resource.js';
import type { PhysicalTransaction, Transaction } from './transaction.js';

export type WillRetry = (err: unknown) => boolean;
export const NEVER_RETRY: WillRetry = () => false;

/** Where an owned transaction's hooks run: its own ambient frame. */
export interface OwnedScope {
  readonly physical: PhysicalTransaction;
  readonly root: Transaction;
  readonly suspended: readonly ResourceTx[];
}

/** Commits an owned transaction whose work succeeded (or rolls back when it must). */
export async function commitOwned(
  scope: OwnedScope,
  o: ResolvedOptions,
  willRetry: WillRetry,
): Promise<void> {
  const p = scope.physical;
  try {
    if (p.unsettled) {
      const pendingError = await p.drain();
      if (pendingError !== undefined) throw pendingError;
    }
    assertCommittable(p);
    if (p.hooks.length > 0) {
      await runInFrame(p.engine.key, { tx: scope.root, suspended: scope.suspended }, () =>
        p.runBeforeCommit(),
      );
      const late = await p.drain();
      if (late !== undefined) throw late;
      assertCommittable(p);
    }
    if (p.endedBy) throw p.endedBy;
    if (p.deadline !== undefined && performance.now() >= p.deadline) throw p.timeout();
  } catch (err) {
    return failOwned(scope, o, err, willRetry, true);
  }
  await finishCommit(p, willRetry);
}

/** Commits after the checks passed (rolls back instead when marked rollback-only). */
async function finishCommit(p: PhysicalTransaction, willRetry: WillRetry): Promise<void> {
  if (p.rollbackOnly) {
    await p.rollback('rollback-only', undefined, true);
    return;
  }
  await p.commit(willRetry);
  if (p.hooks.length > 0) await p.runHooks(p.hooks.splice(0), 'afterCommit');
}

function assertCommittable(p: PhysicalTransaction): void {
  if (p.state === 'aborted') {
    throw new TransactionRolledBackError(
      `transaction ${p.id} was aborted by a failed statement (caught by the callback, or never awaited); nothing was committed`,
      // Re-running can cure it when the cause could (a deadlock victim, a serialization failure).
      { txId: p.id, cause: p.abortCause, retryable: isRetryable(p.abortCause) },
    );
  }
  if (p.innerFailure !== undefined) {
    throw new TransactionRolledBackError(
      `transaction ${p.id} was rolled back: a scope that joined it failed and the error was caught`,
      { txId: p.id, cause: p.innerFailure, retryable: isRetryable(p.innerFailure) },
    );
  }
}

/**
 * Ends an owned transaction whose work failed with `err`, then rethrows `err`.
 * `fromCommit`: `err` came from commitOwned's own checks (a beforeCommit hook, a late
 * statement failure), which must not run again when the work is kept.
 */
export async function failOwned(
  scope: OwnedScope,
  o: ResolvedOptions,
  err: unknown,
  willRetry: WillRetry,
  fromCommit = false,
): Promise<never> {
  const p = scope.physical;
  if (p.finished) throw err;
  if (p.state === 'active' && p.innerFailure === undefined && p.endedBy === undefined && !rollsBack(o, err)) {
    // noRollbackOn / rollbackOn said keep the work: end it as a success would (rollback-only,
    // beforeCommit hooks and the deadline included), then rethrow.
    const pendingError = await p.drain();
    if (pendingError === undefined && p.state === 'active') {
      await (fromCommit ? finishCommit(p, willRetry) : commitOwned(scope, o, willRetry));
      throw err;
    }
  }
  let reason: RollbackReason = 'error';
  if (err === p.endedBy) reason = err instanceof TransactionTimeoutError ? 'timeout' : 'cancelled';
  await p.rollback(reason, err, !willRetry(err));
  throw err;
}
