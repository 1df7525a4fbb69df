/** Several locks at once, always in one canonical order (sorted lock paths): no deadlocks. */
import { InvalidOptionError } from '../core/errors.js';
import { nodeFs } from './fs-adapter.js';
import { acquireAt, type LockHandle, type LockOptions, resolveOptions } from './lock.js';
import { type LockMode, lockPathFor, MODES } from './lock-entries.js';

/** One lock request for {@link lockMany}. */
export interface LockRequest {
  path: string;
  mode?: LockMode;
}

/** Several locks held together; `release()` releases them in reverse order. */
export interface MultiLockHandle {
  readonly handles: readonly LockHandle[];
  release(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Takes several locks in one canonical order (sorted lock paths), so two callers asking for
 * the same set in different orders cannot deadlock. `timeoutMs` covers the whole batch; on
 * any failure the locks already taken are released in reverse order.
 */
export async function lockMany(
  requests: readonly LockRequest[],
  options: Omit<LockOptions, 'mode' | 'lockPath'> = {},
) {
  const r = resolveOptions(options);
  const fs = options.fs ?? nodeFs;
  const deadline = performance.now() + r.timeoutMs;
  const byDir = new Map<string, LockMode>();
  for (const q of requests) {
    const dir = await lockPathFor(q.path, fs);
    const mode = q.mode ?? 'exclusive';
    if (!MODES.includes(mode)) throw new InvalidOptionError(`lockMany: mode must be 'shared' or 'exclusive'`);
    if (byDir.get(dir) !== 'exclusive') byDir.set(dir, mode); // same lock twice: the stronger mode
  }
  const dirs = [...byDir.keys()].sort();
  const held: LockHandle[] = [];
  const releaseAll = async () => {
    const errors: unknown[] = [];
    for (const h of [...held].reverse()) await h.release().catch((e) => errors.push(e));
    if (errors.length) throw errors[0];
  };
  try {
    for (const dir of dirs) {
      held.push(await acquireAt(fs, dir, { ...r, mode: byDir.get(dir)! }, options, deadline));
    }
  } catch (err) {
    await releaseAll().catch(() => {});
    throw err;
  }
  const multi: MultiLockHandle = {
    handles: held,
    release: releaseAll,
    [Symbol.asyncDispose]: releaseAll,
  };
  return multi;
}
