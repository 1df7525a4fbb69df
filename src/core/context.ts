/**
 * The ambient transaction: which transaction, if any, the current async context is in,
 * per database instance. Built on AsyncLocalStorage, so it follows `await`, timers and
 * promise chains, and never leaks into unrelated async work.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { ResourceTx } from './resource.js';
import type { Transaction } from './transaction.js';

export interface Frame {
  /** The transaction scope this context runs in, or undefined (e.g. `not_supported`). */
  readonly tx: Transaction | undefined;
  /** Physical transactions of this database suspended by `requires_new` / `not_supported` here. */
  readonly suspended: readonly ResourceTx[];
}

/**
 * One frame per runInFrame call, linked to the store it was entered from: entering a
 * scope allocates one small object instead of copying every database's frame.
 */
interface Store {
  readonly db: object;
  readonly frame: Frame;
  readonly outer: Store | undefined;
  readonly innermost: Transaction | undefined;
}

const storage = new AsyncLocalStorage<Store>();
const NO_FRAME: Frame = Object.freeze({
  tx: undefined,
  suspended: Object.freeze([]) as readonly ResourceTx[],
});

/** The frame of `db` in the current async context. */
export function frameOf(db: object): Frame {
  for (let s = storage.getStore(); s; s = s.outer) if (s.db === db) return s.frame;
  return NO_FRAME;
}

/** Runs `fn` with `frame` as `db`'s frame; other databases' frames are unchanged. */
export function runInFrame<T>(db: object, frame: Frame, fn: () => T): T {
  const store = storage.getStore();
  return storage.run({ db, frame, outer: store, innermost: frame.tx ?? store?.innermost }, fn);
}

/**
 * The transaction open in the current async context: of `db` when given, otherwise the
 * innermost one of any database. Undefined outside a transaction or once it has ended.
 *
 * @example
 * await db.transaction(async () => {
 *   await repo.save(order); // repo calls currentTransaction(db) or simply db.execute(...)
 * });
 */
export function currentTransaction(db?: object): Transaction | undefined {
  const store = storage.getStore();
  if (!store) return undefined;
  const tx = db ? frameOf(db).tx : store.innermost;
  return tx?.isOpen ? tx : undefined;
}
