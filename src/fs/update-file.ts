/**
 * Read-modify-write of one file under one exclusive lock acquisition, replaced atomically:
 * no lost updates between processes (the seed took separate locks for the read and the
 * write, so its 3 × 10 increments ended below 30).
 */
import { type AtomicWriteOptions, atomicWriteFile } from './atomic-write.js';
import { errnoOf } from './errors.js';
import { nodeFs } from './fs-adapter.js';
import { type LockOptions, lock } from './lock.js';

/**
 * Applies `fn` to the current content (undefined when the file does not exist) and writes
 * its result atomically, all under the file's exclusive lock. Returns what was written.
 *
 * @example
 * await updateFile('counter', (old) => String(Number(old ?? 0) + 1));
 */
export async function updateFile(
  path: string,
  fn: (current: Buffer | undefined) => string | Uint8Array | Promise<string | Uint8Array>,
  options: {
    lock?: Omit<LockOptions, 'mode' | 'fs'>;
    write?: Omit<AtomicWriteOptions, 'fs'>;
    fs?: AtomicWriteOptions['fs'];
  } = {},
): Promise<string | Uint8Array> {
  const fs = options.fs ?? nodeFs;
  const l = await lock(path, { ...options.lock, mode: 'exclusive', fs });
  try {
    let current: Buffer | undefined;
    try {
      current = await fs.readFile(path);
    } catch (err) {
      if (errnoOf(err) !== 'ENOENT') throw err;
    }
    const next = await fn(current);
    l.assertHeld(); // lost the lock while computing: do not write
    await atomicWriteFile(path, next, { ...options.write, fs });
    return next;
  } finally {
    await l.release();
  }
}
