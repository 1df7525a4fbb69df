/**
 * The locks the current async scope holds through `withLock()`. A request for one of them
 * could only wait on its own holder until its timeout, so it is decided at once: granted
 * from the held lock (re-entry with `reentrant: true`, same or weaker mode) or refused.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { LockReentryError, LockUpgradeError } from './errors.js';
import type { LockHandle } from './lock.js';
import type { LockMode } from './lock-entries.js';

interface Held {
  readonly handle: LockHandle;
  /** False once the scope has ended: work it started and left running holds nothing. */
  active: boolean;
}

const scope = new AsyncLocalStorage<ReadonlyMap<string, Held>>();

/**
 * The held lock to reuse for a request for lock directory `dir`, or undefined when this
 * scope does not hold it. Throws when the request could only wait on this scope.
 */
export function reuseFromScope(dir: string, mode: LockMode, reentrant: boolean): LockHandle | undefined {
  const held = scope.getStore()?.get(dir);
  if (!held?.active || !stillHeld(held.handle)) return undefined;
  if (held.handle.mode === 'shared' && mode === 'exclusive') {
    throw new LockUpgradeError(
      `${dir} is held shared by this scope; an exclusive request would wait on itself. ` +
        'Release it and take it exclusive, or take it exclusive from the start',
    );
  }
  if (!reentrant) {
    throw new LockReentryError(
      `${dir} is already held (${held.handle.mode}) by this scope; pass reentrant: true, or use the handle you hold`,
    );
  }
  return held.handle;
}

/** False once released (or lost): a new request then waits on other holders, not on this scope. */
function stillHeld(handle: LockHandle): boolean {
  try {
    handle.assertHeld();
    return true;
  } catch {
    return false;
  }
}

/** Runs `fn` in a scope that also holds `handle` on `dir`. */
export async function runHolding<T>(dir: string, handle: LockHandle, fn: () => Promise<T>): Promise<T> {
  const held: Held = { handle, active: true };
  const next = new Map(scope.getStore());
  next.set(dir, held);
  try {
    return await scope.run(next, fn);
  } finally {
    held.active = false;
  }
}
