/** Operator views of a lock directory: status, `isLocked`, and breaking a lock. */
import { randomUUID } from 'node:crypto';
import { join, resolve } from 'node:path';
import { errnoOf, FileLockTimeoutError } from './errors.js';
import { type FsAdapter, nodeFs } from './fs-adapter.js';
import {
  epochName,
  freeReason,
  lockPathFor,
  newestSlot,
  type OwnerRecord,
  ownerRecord,
  publish,
  readEntry,
} from './lock-entries.js';

/** What is in a lock directory, for `txkit fs lock status` and `isLocked`. */
export interface LockStatus {
  lockPath: string;
  /** The newest exclusive slot, when there is one. */
  exclusive?: {
    epoch: number;
    owner: OwnerRecord | undefined;
    heartbeatAgeMs: number;
    free: string | undefined;
  };
  readers: { owner: OwnerRecord | undefined; heartbeatAgeMs: number; stale: string | undefined }[];
  /** True when a live holder (or waiting writer) is in. */
  locked: boolean;
}

/** Reads a lock directory (`<target>.lock`, or a lock directory itself). */
export async function lockStatus(pathOrLockDir: string, options: { staleMs?: number; fs?: FsAdapter } = {}) {
  const fs = options.fs ?? nodeFs;
  const staleMs = options.staleMs ?? 10_000;
  const dir = pathOrLockDir.endsWith('.lock') ? resolve(pathOrLockDir) : await lockPathFor(pathOrLockDir, fs);
  const { epoch, entry: e, readers } = await newestSlot(fs, dir);
  const now = Date.now();
  const status: LockStatus = { lockPath: dir, readers: [], locked: false };
  if (epoch > 0) {
    const free = freeReason(e, staleMs, now);
    status.exclusive = { epoch, owner: e?.record, heartbeatAgeMs: e ? now - e.mtimeMs : 0, free };
    if (!free) status.locked = true;
  }
  for (const name of readers) {
    const e = await readEntry(fs, join(dir, name));
    if (!e) continue;
    const stale = freeReason(e, staleMs, now);
    status.readers.push({ owner: e.record, heartbeatAgeMs: now - e.mtimeMs, stale });
    if (!stale) status.locked = true;
  }
  return status;
}

/** True when any process (this one included) holds `target`'s lock. */
export async function isLocked(
  target: string,
  options: { staleMs?: number; fs?: FsAdapter } = {},
): Promise<boolean> {
  return (await lockStatus(target, options)).locked;
}

/**
 * Operator break: ends the current holders. Refuses a live (non-stale) lock unless
 * `force`. The exclusive slot is ended by creating the next epoch as `released` (so the
 * old holder's heartbeat sees it lost), never by deleting a record.
 */
export async function breakLock(
  pathOrLockDir: string,
  options: { force?: boolean; staleMs?: number; fs?: FsAdapter } = {},
): Promise<{ broken: number }> {
  const fs = options.fs ?? nodeFs;
  const status = await lockStatus(pathOrLockDir, options);
  if (status.locked && !options.force) {
    // `holder` is the live owner's record, as on a timed-out acquire.
    const writer = status.exclusive && !status.exclusive.free ? status.exclusive.owner : undefined;
    throw new FileLockTimeoutError(
      `lock ${status.lockPath} is held by a live owner; use force to break it`,
      writer ?? status.readers.find((r) => r.stale === undefined)?.owner,
    );
  }
  let broken = 0;
  const ex = status.exclusive;
  if (ex && !ex.owner?.released) {
    const rec = {
      ...ownerRecord(randomUUID(), 'exclusive', 'broken by operator', ex.epoch + 1),
      released: true,
    };
    try {
      await publish(fs, status.lockPath, epochName(ex.epoch + 1), rec, 'link');
      broken++;
    } catch (err) {
      if (errnoOf(err) !== 'EEXIST') throw err;
    }
  }
  for (const r of status.readers) {
    if (r.owner?.token) {
      await fs.unlink(join(status.lockPath, `r.${r.owner.token}`)).then(
        () => broken++,
        () => {},
      );
    }
  }
  return { broken };
}
