/**
 * Atomic file replace: readers and a crash at any point see either the whole old file or
 * the whole new one. Temp file in the same directory → write every byte → fsync → close →
 * rename → fsync the directory → resolve. write-file-atomic skips the directory fsync.
 */
import { randomBytes } from 'node:crypto';
import type { Stats } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { threadId } from 'node:worker_threads';
import { InvalidArgumentError, InvalidOptionError, TransactionCancelledError } from '../core/errors.js';
import { holdDir, syncDirShared } from './dir-sync.js';
import { classifyFsError, errnoOf } from './errors.js';
import { type FsAdapter, type FsFile, nodeFs } from './fs-adapter.js';
import { writeAll } from './write-all.js';

/**
 * `'full'` (default): fdatasync the file, then fsync the directory after the rename.
 * `'data'`: fdatasync the file only (a power loss may undo the rename). `'none'`: rename
 * only, not crash-safe (a power loss may leave an empty or partial file).
 */
export type Durability = 'full' | 'data' | 'none';

export interface AtomicWriteOptions {
  /** Encoding of string data. Default `'utf8'`. */
  encoding?: BufferEncoding;
  /** Default `'full'`. */
  durability?: Durability;
  /** Mode of a new file. Default: the existing file's mode, else `0o666 & ~umask`. */
  mode?: number;
  /** When root, keep the existing file's owner. Default true. */
  chown?: boolean;
  /** Replace the real file behind a symlinked target (default true) instead of the link. */
  followSymlinks?: boolean;
  /** Cancels before the rename; the temp file is removed. */
  signal?: AbortSignal;
  /** Filesystem layer (fault injection in tests). */
  fs?: FsAdapter;
  /** Called with the temp file's path once it exists. */
  onTempCreated?: (tempPath: string) => void;
  /**
   * Windows: how long to retry a rename refused with EPERM/EACCES/EBUSY (another process
   * has the target open), backing off 10 ms → 100 ms. Default 1000 on win32, 0 elsewhere.
   */
  renameRetryMs?: number;
  /** The platform whose rules apply (tests simulate `'win32'`). Default `process.platform`. */
  platform?: NodeJS.Platform;
}

export type AtomicWriteData = string | Uint8Array | AsyncIterable<Uint8Array | string>;

const DURABILITIES: readonly Durability[] = ['full', 'data', 'none'];
/** Temp names: `.<base>.<pid>.<threadId>.<12 hex>.tmp`; `cleanupStaleTemps` matches this. */
export const TEMP_NAME = /^\.(.+)\.(\d+)\.(\d+)\.([0-9a-f]{12})\.tmp$/;

export function tempPathFor(target: string): string {
  return join(
    dirname(target),
    `.${basename(target)}.${process.pid}.${threadId}.${randomBytes(6).toString('hex')}.tmp`,
  );
}

/** In-process FIFO per resolved path, so concurrent calls apply in call order. */
const queues = new Map<string, Promise<unknown>>();

interface Target {
  /** The file the rename replaces (the real file behind a followed symlink). */
  path: string;
  /** Mode and owner of the file being replaced, when it exists. */
  existing: { mode: number; uid: number; gid: number } | undefined;
}

/** Where the new content goes and what it replaces: one lstat unless the path is a symlink. */
async function inspectTarget(fs: FsAdapter, path: string, follow: boolean): Promise<Target> {
  const abs = resolve(path);
  const op = 'atomicWriteFile';
  let st: Stats;
  try {
    st = await fs.lstat(abs);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return { path: abs, existing: undefined };
    throw classifyFsError(err, { op, step: 'stat target', path: abs });
  }
  let target = abs;
  if (st.isSymbolicLink() && follow) {
    try {
      target = await fs.realpath(abs);
      st = await fs.stat(target);
    } catch (err) {
      // A dangling link: replace the link itself, as there is no file behind it.
      if (errnoOf(err) !== 'ENOENT') throw classifyFsError(err, { op, step: 'stat target', path: abs });
      return { path: abs, existing: undefined };
    }
  }
  // A link replaced itself (followSymlinks: false): its own mode (0777) is not a file's.
  if (st.isSymbolicLink()) return { path: abs, existing: undefined };
  return { path: target, existing: { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid } };
}

function checkOptions(path: unknown, data: unknown, o: AtomicWriteOptions): void {
  if (typeof path !== 'string' || path.length === 0) {
    throw new InvalidArgumentError('atomicWriteFile: path must be a non-empty string');
  }
  if (data === null || data === undefined) {
    throw new InvalidArgumentError(
      'atomicWriteFile: data must be a string, a Uint8Array or an async iterable',
    );
  }
  if (o.durability !== undefined && !DURABILITIES.includes(o.durability)) {
    throw new InvalidOptionError(`atomicWriteFile: durability must be one of ${DURABILITIES.join(', ')}`);
  }
  if (o.mode !== undefined && (!Number.isInteger(o.mode) || o.mode < 0 || o.mode > 0o7777)) {
    throw new InvalidOptionError('atomicWriteFile: mode must be an integer between 0 and 0o7777');
  }
}

async function writeData(file: FsFile, data: AtomicWriteData, encoding: BufferEncoding, path: string) {
  if (typeof data === 'string') return writeAll(file, Buffer.from(data, encoding), 0, path);
  if (data instanceof Uint8Array) return writeAll(file, data, 0, path);
  let pos = 0;
  for await (const chunk of data) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk, encoding) : chunk;
    await writeAll(file, buf, pos, path);
    pos += buf.length;
  }
}

/**
 * Replaces `path` atomically with `data`. Resolves only once the new content and the
 * rename are durable (with the default `durability: 'full'`). On any error the target is
 * untouched, the temp file is removed, and a classified error is thrown
 * (`DiskFullError`, `FsPermissionError`, `CrossDeviceError`, `FsIoError`, ...).
 *
 * @example
 * await atomicWriteFile('config.json', JSON.stringify(config));
 */
export async function atomicWriteFile(
  path: string,
  data: AtomicWriteData,
  options: AtomicWriteOptions = {},
): Promise<void> {
  checkOptions(path, data, options);
  const fs = options.fs ?? nodeFs;
  // Queue synchronously (before any await) so calls apply in call order.
  const key = resolve(path);
  const task = async () =>
    replace(fs, await inspectTarget(fs, path, options.followSymlinks ?? true), data, options);
  const run = (queues.get(key) ?? Promise.resolve()).then(task, task);
  queues.set(key, run);
  try {
    await run;
  } finally {
    if (queues.get(key) === run) queues.delete(key);
  }
}

async function replace(fs: FsAdapter, to: Target, data: AtomicWriteData, o: AtomicWriteOptions) {
  const durability = o.durability ?? 'full';
  const platform = o.platform ?? process.platform;
  const op = 'atomicWriteFile';
  const { path: target, existing } = to;
  const abortIfNeeded = () => {
    if (o.signal?.aborted) throw new TransactionCancelledError(`${op}: aborted before rename of ${target}`);
  };
  abortIfNeeded();
  // Open the directory now, while the data is written: its fsync then waits for no open.
  const releaseDir = durability === 'full' && platform !== 'win32' ? holdDir(fs, dirname(target)) : undefined;
  const temp = tempPathFor(target);
  let step = 'create temp file';
  let file: FsFile | undefined;
  let renamed = false;
  try {
    file = await fs.open(temp, 'wx', o.mode ?? existing?.mode ?? 0o666);
    o.onTempCreated?.(temp);
    step = 'write temp file';
    await writeData(file, data, o.encoding ?? 'utf8', temp);
    const uid = process.getuid?.();
    // As root, give the new file the old owner (a new file is owned by us: skip when equal).
    if (
      existing &&
      (o.chown ?? true) &&
      uid === 0 &&
      (existing.uid !== uid || existing.gid !== process.getgid?.())
    ) {
      step = 'chown temp file';
      await file.chown(existing.uid, existing.gid).catch(() => {}); // as write-file-atomic: best effort
    }
    // open() applied the umask: keep the old mode exactly. The mode is inode metadata that
    // fdatasync does not promise to flush either way, so the two need not wait for each other.
    const chmod = existing && o.mode === undefined ? file.chmod(existing.mode) : undefined;
    const chmodDone = chmod?.then(
      () => undefined,
      (err: unknown) => err ?? new Error('chmod failed'),
    );
    if (durability !== 'none') {
      // fdatasync flushes the data and the metadata needed to read it back (size,
      // allocation); the name is made durable by the directory fsync below.
      step = 'fsync temp file';
      try {
        await file.datasync();
      } catch (err) {
        await chmodDone;
        throw err;
      }
    }
    const chmodError = await chmodDone;
    if (chmodError !== undefined) {
      step = 'chmod temp file';
      throw chmodError;
    }
    step = 'close temp file';
    const f = file;
    file = undefined;
    await f.close(); // NFS reports deferred write errors here: only then may the rename happen
    abortIfNeeded();
    step = 'rename';
    await renameWithRetry(fs, temp, target, platform, o.renameRetryMs ?? (platform === 'win32' ? 1000 : 0));
    renamed = true;
    if (durability === 'full' && platform !== 'win32') {
      // (Windows cannot fsync a directory: there the rename's durability is the filesystem's.)
      step = 'fsync directory';
      await syncDirShared(fs, dirname(target));
    }
  } catch (err) {
    if (file) await file.close().catch(() => {});
    if (!renamed) await fs.unlink(temp).catch(() => {});
    const fsyncFailed = step.startsWith('fsync');
    const e = classifyFsError(err, { op, step, path: target }, fsyncFailed);
    if (renamed)
      e.detail = 'the rename happened but is not known to be durable: treat the outcome as unknown';
    throw e;
  } finally {
    releaseDir?.();
  }
}

const WIN_RENAME_BUSY = new Set(['EPERM', 'EACCES', 'EBUSY']);

/** On win32, a rename onto a file someone holds open fails transiently: retry within a budget. */
async function renameWithRetry(fs: FsAdapter, from: string, to: string, platform: string, budgetMs: number) {
  const deadline = performance.now() + budgetMs;
  for (let delay = 10; ; delay = Math.min(delay * 2, 100)) {
    try {
      return await fs.rename(from, to);
    } catch (err) {
      const left = deadline - performance.now();
      if (platform !== 'win32' || !WIN_RENAME_BUSY.has(errnoOf(err) ?? '') || left <= 0) throw err;
      await sleep(Math.min(delay, left));
    }
  }
}

/** `atomicWriteFile` of `JSON.stringify(value, null, indent)` plus a newline. */
export function atomicWriteJson(
  path: string,
  value: unknown,
  options: AtomicWriteOptions & { indent?: number } = {},
): Promise<void> {
  return atomicWriteFile(path, `${JSON.stringify(value, null, options.indent ?? 2)}\n`, options);
}

/**
 * Removes txkit temp files in `dir` older than `olderThanMs` (default 24 h) whose writer
 * process is gone. Only names matching txkit's temp pattern are touched. Returns the count.
 */
export async function cleanupStaleTemps(
  dir: string,
  options: { olderThanMs?: number; fs?: FsAdapter } = {},
): Promise<number> {
  const fs = options.fs ?? nodeFs;
  const olderThan = options.olderThanMs ?? 24 * 3600_000;
  let removed = 0;
  for (const name of await fs.readdir(dir)) {
    const m = TEMP_NAME.exec(name);
    if (!m) continue;
    const pid = Number(m[2]);
    if (pid !== process.pid && isAlive(pid)) continue;
    if (pid === process.pid && olderThan > 0) continue;
    const p = join(dir, name);
    try {
      const st = await fs.stat(p);
      if (Date.now() - st.mtimeMs < olderThan) continue;
      await fs.unlink(p);
      removed++;
    } catch {
      // raced with its writer or another cleaner
    }
  }
  return removed;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return errnoOf(err) === 'EPERM';
  }
}
