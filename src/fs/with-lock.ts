/** `withLock`: a lock held for exactly the duration of a callback, aware of its own scope. */
import { InvalidOptionError } from '../core/errors.js';
import { acquireAt, type LockHandle, type LockOptions, lockRequest } from './lock.js';
import { reuseFromScope, runHolding } from './lock-scope.js';

export interface WithLockOptions extends LockOptions {
  /**
   * Inside a scope that already holds this lock, grant a request for the same or a weaker
   * mode from the held lock (it stays held until the outer scope ends). Default false: such
   * a request fails with `LockReentryError`. An upgrade (shared → exclusive) always fails
   * with `LockUpgradeError`.
   */
  reentrant?: boolean;
}

/**
 * Runs `fn` holding the lock on `target`, then releases it, also when `fn` throws. Inside
 * `fn` and everything it starts, a request for the same lock (through `withLock`, `lock`
 * or `lockMany`) is decided at once instead of waiting on itself until its timeout.
 *
 * @example
 * await withLock('ledger.csv', { mode: 'exclusive' }, async (l) => {
 *   await atomicWriteFile('ledger.csv', next, { signal: l.signal });
 * });
 */
export async function withLock<T>(
  target: string,
  options: WithLockOptions,
  fn: (lock: LockHandle) => Promise<T>,
): Promise<T> {
  if (options.reentrant !== undefined && typeof options.reentrant !== 'boolean') {
    throw new InvalidOptionError(`withLock: reentrant must be a boolean, got ${String(options.reentrant)}`);
  }
  const { r, fs, dir } = await lockRequest(target, options);
  const held = reuseFromScope(dir, r.mode, options.reentrant === true);
  if (held) return fn(held);
  const handle = await acquireAt(fs, dir, r, options, performance.now() + r.timeoutMs);
  let result: T;
  try {
    result = await runHolding(dir, handle, () => fn(handle));
  } catch (err) {
    await handle.release().catch(() => {}); // the callback's error is the one to report
    throw err;
  }
  await handle.release(); // a lock lost meanwhile throws LockCompromisedError: the work was not protected
  return result;
}
