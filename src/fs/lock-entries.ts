/**
 * The on-disk entries of a lease lock directory (see lock.ts for the protocol): owner
 * records, how they are published (fully written, then `link`/`rename`), read, and judged.
 */
import { basename, dirname, join, resolve } from 'node:path';
import { InvalidArgumentError } from '../core/errors.js';
import { errnoOf } from './errors.js';
import { type FsAdapter, nodeFs } from './fs-adapter.js';
import { currentProcess, ownerLiveness, type ProcessIdentity } from './process-identity.js';
import { writeAll } from './write-all.js';

export type LockMode = 'shared' | 'exclusive';

/** What a lock entry says about its holder. */
export interface OwnerRecord extends ProcessIdentity {
  token: string;
  mode: LockMode;
  acquiredAt: string;
  /** Exclusive slot number: increases with every exclusive acquisition (fencing token). */
  epoch?: number;
  /** The exclusive slot was released (or broken by an operator). */
  released?: boolean;
  /** Optional label for humans (`txkit fs lock status`). */
  label?: string;
}

export const MODES: readonly LockMode[] = ['shared', 'exclusive'];
export const EPOCH_DIGITS = 16;
export const epochName = (n: number) => `x.${String(n).padStart(EPOCH_DIGITS, '0')}`;

/** The lock directory for `target`: `<realpath(target)>.lock`, so aliases share one lock. */
export async function lockPathFor(target: string, fs: FsAdapter = nodeFs): Promise<string> {
  if (typeof target !== 'string' || target.length === 0) {
    throw new InvalidArgumentError('lock: path must be a non-empty string');
  }
  const abs = resolve(target);
  try {
    return `${await fs.realpath(abs)}.lock`;
  } catch {
    try {
      return join(await fs.realpath(dirname(abs)), `${basename(abs)}.lock`);
    } catch {
      return `${abs}.lock`;
    }
  }
}

export interface Entry {
  record: OwnerRecord | undefined;
  mtimeMs: number;
}

/** Reads the lock directory: epochs (ascending) and reader entry names. */
export async function scan(fs: FsAdapter, dir: string): Promise<{ epochs: number[]; readers: string[] }> {
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return { epochs: [], readers: [] };
    throw err;
  }
  const epochs: number[] = [];
  const readers: string[] = [];
  for (const n of names) {
    if (n.startsWith('x.') && /^x\.\d+$/.test(n)) epochs.push(Number(n.slice(2)));
    else if (n.startsWith('r.')) readers.push(n);
  }
  epochs.sort((a, b) => a - b);
  return { epochs, readers };
}

/** The newest exclusive slot of a lock directory (epoch 0: never taken), and the readers' entries. */
export async function newestSlot(
  fs: FsAdapter,
  dir: string,
): Promise<{ epoch: number; entry: Entry | undefined; readers: string[] }> {
  const { epochs, readers } = await scan(fs, dir);
  const epoch = epochs.at(-1) ?? 0;
  const entry = epoch > 0 ? await readEntry(fs, join(dir, epochName(epoch))) : undefined;
  return { epoch, entry, readers };
}

/** True when nobody holds the slot: never taken, released, or its owner is gone. */
export function slotFree(slot: { epoch: number; entry: Entry | undefined }, staleMs: number): boolean {
  return slot.epoch === 0 || freeReason(slot.entry, staleMs) !== undefined;
}

export async function readEntry(fs: FsAdapter, path: string): Promise<Entry | undefined> {
  try {
    const st = await fs.stat(path);
    let record: OwnerRecord | undefined;
    try {
      record = JSON.parse((await fs.readFile(path)).toString('utf8')) as OwnerRecord;
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') return undefined;
      record = undefined; // unreadable: held until its mtime is old
    }
    return { record, mtimeMs: st.mtimeMs };
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return undefined;
    throw err;
  }
}

/** Why an entry no longer excludes anyone, or undefined when it is held. */
export function freeReason(entry: Entry | undefined, staleMs: number, now = Date.now()): string | undefined {
  if (!entry) return 'absent';
  const r = entry.record;
  if (r?.released) return 'released';
  if (r && ownerLiveness(r) === 'dead') return `owner pid ${r.pid} on ${r.hostname} is gone`;
  if (now - entry.mtimeMs > staleMs) return `no heartbeat for ${Math.round(now - entry.mtimeMs)} ms`;
  return undefined;
}

export async function publish(
  fs: FsAdapter,
  dir: string,
  name: string,
  record: OwnerRecord,
  how: 'link' | 'rename',
) {
  const tmp = join(dir, `.t.${record.token}.${Math.random().toString(36).slice(2)}`);
  const f = await fs.open(tmp, 'wx', 0o644);
  try {
    await writeAll(f, Buffer.from(JSON.stringify(record)), 0, tmp);
  } finally {
    await f.close();
  }
  try {
    if (how === 'link') await fs.link(tmp, join(dir, name));
    else await fs.rename(tmp, join(dir, name));
  } finally {
    if (how === 'link') await fs.unlink(tmp).catch(() => {});
  }
}

export function ownerRecord(
  token: string,
  mode: LockMode,
  label: string | undefined,
  epoch?: number,
): OwnerRecord {
  const rec: OwnerRecord = { ...currentProcess(), token, mode, acquiredAt: new Date().toISOString() };
  if (epoch !== undefined) rec.epoch = epoch;
  if (label !== undefined) rec.label = label;
  return rec;
}
