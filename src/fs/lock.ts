/**
 * Cross-process lease locks (shared/exclusive) on a lock directory next to the target.
 *
 * Layout of `<target>.lock/` (entries in lock-entries.ts):
 * - `x.<epoch>`: the exclusive slot. Each writer *creates* the next epoch with `link()`,
 *   which fails with EEXIST when someone else got there first, so a takeover of a dead
 *   owner's lock can be won by exactly one process. The epoch is the fencing token.
 *   Release rewrites the record as `released` (never deletes it: epochs stay monotonic).
 * - `r.<token>`: one entry per shared holder.
 * Owner records are written to a temp file and published by `link`/`rename`, so a
 * visible entry always has its full record. The heartbeat is the entry's mtime.
 *
 * Writers are preferred: a writer takes its epoch first (new readers then wait), then
 * waits for the readers already inside to leave. Readers publish their entry, then check
 * the exclusive slot again, so a reader and a writer can never both get in.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { InvalidOptionError, TransactionCancelledError } from '../core/errors.js';
import { classifyFsError, errnoOf, FileLockTimeoutError, LockCompromisedError } from './errors.js';
import { fsEvents } from './events.js';
import { type FsAdapter, nodeFs } from './fs-adapter.js';
import {
  type Entry,
  epochName,
  freeReason,
  type LockMode,
  lockPathFor,
  MODES,
  newestSlot,
  type OwnerRecord,
  ownerRecord,
  publish,
  readEntry,
  scan,
  slotFree,
} from './lock-entries.js';
import { reuseFromScope } from './lock-scope.js';

export { freeReason, type LockMode, lockPathFor, type OwnerRecord } from './lock-entries.js';

export interface LockOptions {
  /** `'exclusive'` (default) or `'shared'`. */
  mode?: LockMode;
  /** Give up after this long (`FileLockTimeoutError`); 0 = try once. Default 10 000. */
  timeoutMs?: number;
  /** Poll interval while waiting, ±20% jitter. Default 100. */
  pollIntervalMs?: number;
  /** A holder silent for longer than this is stale. Default 10 000. */
  staleMs?: number;
  /** Heartbeat period. Default `staleMs / 2`. */
  updateMs?: number;
  /** Use this lock directory instead of `<realpath(target)>.lock`. */
  lockPath?: string;
  signal?: AbortSignal;
  /** Called (once) when the lock is found taken over. Default: emit `lock-compromised`. */
  onCompromised?: (err: LockCompromisedError) => void;
  label?: string;
  fs?: FsAdapter;
}

/** A held lock. Release it in `finally` (or use `await using`). */
export interface LockHandle {
  readonly lockPath: string;
  readonly mode: LockMode;
  readonly token: string;
  /** Exclusive: this holder's epoch; shared: the epoch of the last writer before it. */
  readonly fencingToken: number;
  /** True once the lock was found taken over; stop writing. */
  readonly compromised: boolean;
  /** Aborted when the lock is compromised: pass it to work done under the lock. */
  readonly signal: AbortSignal;
  /** Throws `LockCompromisedError` when the lock was lost. */
  assertHeld(): void;
  /** Releases; idempotent. Throws `LockCompromisedError` if another owner took it over. */
  release(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export interface Resolved {
  mode: LockMode;
  timeoutMs: number;
  pollIntervalMs: number;
  staleMs: number;
  updateMs: number;
}

export function resolveOptions(o: LockOptions): Resolved {
  const mode = o.mode ?? 'exclusive';
  if (!MODES.includes(mode))
    throw new InvalidOptionError(`lock: mode must be 'shared' or 'exclusive', got ${String(mode)}`);
  const num = (name: string, v: number | undefined, def: number, min: number) => {
    if (v === undefined) return def;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min) {
      throw new InvalidOptionError(`lock: ${name} must be a finite number >= ${min}, got ${String(v)}`);
    }
    return v;
  };
  const staleMs = num('staleMs', o.staleMs, 10_000, 100);
  return {
    mode,
    timeoutMs: num('timeoutMs', o.timeoutMs, 10_000, 0),
    pollIntervalMs: num('pollIntervalMs', o.pollIntervalMs, 100, 1),
    staleMs,
    updateMs: Math.min(num('updateMs', o.updateMs, staleMs / 2, 10), staleMs / 2),
  };
}

type Attempt = { ok: true; epoch: number; entry: string; previous?: Entry } | { ok: false; holder?: unknown };

/** One try at the exclusive slot: create epoch max+1 if the current one is free. */
async function tryExclusiveSlot(
  fs: FsAdapter,
  dir: string,
  token: string,
  r: Resolved,
  label?: string,
): Promise<Attempt> {
  for (;;) {
    const slot = await newestSlot(fs, dir);
    const m = slot.epoch;
    const current = slot.entry;
    if (!slotFree(slot, r.staleMs)) return { ok: false, holder: current?.record };
    try {
      await publish(fs, dir, epochName(m + 1), ownerRecord(token, 'exclusive', label, m + 1), 'link');
    } catch (err) {
      if (errnoOf(err) === 'EEXIST') continue; // someone else took epoch m+1: look again
      throw err;
    }
    // A process that slept through several epochs could re-create an old, collected one:
    // only the highest epoch holds the slot.
    const after = await scan(fs, dir);
    if ((after.epochs.at(-1) ?? 0) > m + 1) {
      await fs.unlink(join(dir, epochName(m + 1))).catch(() => {});
      continue;
    }
    const res: Attempt = { ok: true, epoch: m + 1, entry: epochName(m + 1) };
    if (current && m > 0) res.previous = current;
    return res;
  }
}

/** Live reader entries; stale ones (dead owners) are removed on the way. */
async function liveReaders(
  fs: FsAdapter,
  dir: string,
  staleMs: number,
  exceptToken?: string,
): Promise<OwnerRecord[]> {
  const { readers } = await scan(fs, dir);
  const live: OwnerRecord[] = [];
  for (const name of readers) {
    if (exceptToken && name === `r.${exceptToken}`) continue;
    const e = await readEntry(fs, join(dir, name));
    const why = freeReason(e, staleMs);
    if (!why) {
      if (e?.record) live.push(e.record);
      else live.push({ token: name.slice(2) } as OwnerRecord);
      continue;
    }
    if (e) {
      // A reader entry has a unique name: removing a stale one cannot hit a fresh holder.
      await fs.unlink(join(dir, name)).catch(() => {});
      fsEvents.emit('lock-broken', { lockPath: dir, previousOwner: e.record, reason: why });
    }
  }
  return live;
}

async function waitTurn(
  r: Resolved,
  deadline: number,
  signal: AbortSignal | undefined,
  what: string,
  holder: unknown,
) {
  if (signal?.aborted) throw new TransactionCancelledError(`lock: aborted while waiting for ${what}`);
  const left = deadline - performance.now();
  if (left <= 0) {
    const who = holder as Partial<OwnerRecord> | undefined;
    const desc = who?.pid ? ` (held by pid ${who.pid} on ${who.hostname}, ${who.mode})` : '';
    throw new FileLockTimeoutError(
      `lock: timed out after ${r.timeoutMs} ms waiting for ${what}${desc}`,
      holder,
    );
  }
  const jitter = r.pollIntervalMs * (0.8 + Math.random() * 0.4);
  await sleep(Math.min(jitter, left), undefined, signal ? { signal } : undefined).catch(() => {});
}

/**
 * Takes a cross-process lock on `target` (the lock lives in `<target>.lock/`).
 *
 * @example
 * const l = await lock('data.json', { mode: 'exclusive', timeoutMs: 5_000 });
 * try { await atomicWriteFile('data.json', next); } finally { await l.release(); }
 */
export async function lock(target: string, options: LockOptions = {}): Promise<LockHandle> {
  const { r, fs, dir } = await lockRequest(target, options);
  return acquireAt(fs, dir, r, options, performance.now() + r.timeoutMs);
}

/** @internal A request for `target`'s lock: its checked options, adapter and lock directory (lock, withLock). */
export async function lockRequest(
  target: string,
  options: LockOptions,
): Promise<{ r: Resolved; fs: FsAdapter; dir: string }> {
  const r = resolveOptions(options);
  const fs = options.fs ?? nodeFs;
  const dir = options.lockPath ? resolve(options.lockPath) : await lockPathFor(target, fs);
  return { r, fs, dir };
}

/** Like {@link lock} with `timeoutMs: 0`, but returns null instead of throwing when held. */
export async function tryLock(
  target: string,
  options: Omit<LockOptions, 'timeoutMs'> = {},
): Promise<LockHandle | null> {
  try {
    return await lock(target, { ...options, timeoutMs: 0 });
  } catch (err) {
    if (err instanceof FileLockTimeoutError) return null;
    throw err;
  }
}

/** Acquires the lock directory `dir` (used by lockMany). */
export async function acquireAt(
  fs: FsAdapter,
  dir: string,
  r: Resolved,
  o: LockOptions,
  deadline: number,
): Promise<LockHandle> {
  reuseFromScope(dir, r.mode, false); // a lock this scope holds: refused at once, never waited on
  const token = randomUUID();
  try {
    await fs.mkdir(dir, { recursive: true });
  } catch (err) {
    throw classifyFsError(err, { op: 'lock', step: 'create lock directory', path: dir });
  }
  if (r.mode === 'exclusive') {
    let slot: Attempt;
    for (;;) {
      slot = await tryExclusiveSlot(fs, dir, token, r, o.label);
      if (slot.ok) break;
      await waitTurn(r, deadline, o.signal, dir, slot.holder);
    }
    if (slot.previous) {
      const why = freeReason(slot.previous, r.staleMs);
      if (why !== 'released' && why !== 'absent') {
        fsEvents.emit('lock-broken', {
          lockPath: dir,
          previousOwner: slot.previous.record,
          reason: why ?? '',
        });
      }
    }
    const handle = new Handle(fs, dir, 'exclusive', token, slot.epoch, slot.entry, r, o.onCompromised);
    // Holding the slot keeps new readers out; now wait for the readers already inside.
    try {
      for (;;) {
        const readers = await liveReaders(fs, dir, r.staleMs);
        if (readers.length === 0) break;
        handle.assertHeld();
        await waitTurn(r, deadline, o.signal, `${dir} (readers inside)`, readers[0]);
      }
    } catch (err) {
      await handle.release().catch(() => {});
      throw err;
    }
    await collectOldEpochs(fs, dir, slot.epoch);
    return handle;
  }
  for (;;) {
    const writer = await newestSlot(fs, dir);
    if (slotFree(writer, r.staleMs)) {
      const entry = `r.${token}`;
      await publish(fs, dir, entry, ownerRecord(token, 'shared', o.label), 'rename');
      // Check again after publishing: a writer that took a slot meanwhile sees our entry
      // and waits, or we see its slot and step back. Never both in.
      const again = await newestSlot(fs, dir);
      if (slotFree(again, r.staleMs)) {
        return new Handle(fs, dir, 'shared', token, again.epoch, entry, r, o.onCompromised);
      }
      await fs.unlink(join(dir, entry)).catch(() => {});
      await waitTurn(r, deadline, o.signal, dir, again.entry?.record);
      continue;
    }
    await waitTurn(r, deadline, o.signal, dir, writer.entry?.record);
  }
}

async function collectOldEpochs(fs: FsAdapter, dir: string, mine: number) {
  const { epochs } = await scan(fs, dir);
  for (const e of epochs) if (e < mine - 1) await fs.unlink(join(dir, epochName(e))).catch(() => {});
}

class Handle implements LockHandle {
  #compromised = false;
  #released = false;
  #timer: NodeJS.Timeout | undefined;
  #beating = false;
  #lastBeatOk = performance.now();
  readonly #abort = new AbortController();

  constructor(
    private readonly fs: FsAdapter,
    readonly lockPath: string,
    readonly mode: LockMode,
    readonly token: string,
    readonly fencingToken: number,
    private readonly entry: string,
    private readonly r: Resolved,
    private readonly onCompromised?: (err: LockCompromisedError) => void,
  ) {
    this.#timer = setInterval(() => void this.#beat(), r.updateMs);
    this.#timer.unref();
    trackHeld(this);
  }

  /** Synchronous best-effort release at process exit (no awaiting possible there). */
  releaseAtExit(): void {
    if (this.#released || this.#compromised || this.fs !== nodeFs) return;
    this.#released = true;
    try {
      if (this.mode === 'shared') {
        unlinkSync(join(this.lockPath, this.entry));
        return;
      }
      if (existsSync(join(this.lockPath, epochName(this.fencingToken + 1)))) return; // taken over
      const tmp = join(this.lockPath, `.t.${this.token}.exit`);
      writeFileSync(
        tmp,
        JSON.stringify({
          ...ownerRecord(this.token, 'exclusive', undefined, this.fencingToken),
          released: true,
        }),
      );
      renameSync(tmp, join(this.lockPath, this.entry));
    } catch {
      // the dead-owner check frees it anyway
    }
  }

  get compromised(): boolean {
    return this.#compromised;
  }
  get signal(): AbortSignal {
    return this.#abort.signal;
  }

  /** Why the lock is no longer ours, or undefined while it is. */
  async #lostReason(): Promise<string | undefined> {
    if (this.mode === 'exclusive') {
      const next = await readEntry(this.fs, join(this.lockPath, epochName(this.fencingToken + 1)));
      if (next)
        return `epoch ${this.fencingToken + 1} was taken by pid ${next.record?.pid ?? '?'} (token ${next.record?.token ?? '?'})`;
    }
    const mine = await readEntry(this.fs, join(this.lockPath, this.entry));
    if (!mine) return `${this.entry} was removed (judged stale)`;
    if (mine.record && mine.record.token !== this.token)
      return `${this.entry} now belongs to ${mine.record.token}`;
    return undefined;
  }

  async #beat() {
    if (this.#released || this.#compromised || this.#beating) return;
    this.#beating = true;
    try {
      const lost = await this.#lostReason();
      if (lost) return this.#lose(lost);
      const now = new Date();
      await this.fs.utimes(join(this.lockPath, this.entry), now, now);
      this.#lastBeatOk = performance.now();
    } catch (err) {
      if (performance.now() - this.#lastBeatOk > this.r.staleMs) {
        this.#lose(`heartbeat failing for over ${this.r.staleMs} ms: ${String(err)}`);
      }
    } finally {
      this.#beating = false;
    }
  }

  #lose(reason: string) {
    if (this.#compromised) return;
    this.#compromised = true;
    untrackHeld(this);
    if (this.#timer) clearInterval(this.#timer);
    const err = new LockCompromisedError(`lock ${this.lockPath} lost: ${reason}`);
    this.#abort.abort(err);
    fsEvents.emit('lock-compromised', { lockPath: this.lockPath, token: this.token, reason });
    if (this.onCompromised) {
      try {
        this.onCompromised(err);
      } catch (error) {
        fsEvents.emit('error', { source: 'lock:onCompromised', error });
      }
    }
  }

  assertHeld(): void {
    if (this.#compromised)
      throw new LockCompromisedError(`lock ${this.lockPath} was taken over; stop writing`);
    if (this.#released) throw new LockCompromisedError(`lock ${this.lockPath} was already released`);
  }

  /** Checks on disk now (not waiting for the heartbeat) that the lock is still ours. */
  async verify(): Promise<void> {
    const lost = this.#compromised ? 'taken over' : await this.#lostReason();
    if (lost) {
      this.#lose(lost);
      throw new LockCompromisedError(`lock ${this.lockPath} lost: ${lost}`);
    }
  }

  async release(): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    untrackHeld(this);
    if (this.#timer) clearInterval(this.#timer);
    const lost = this.#compromised ? 'taken over earlier' : await this.#lostReason();
    if (lost) {
      this.#compromised = true;
      throw new LockCompromisedError(`lock ${this.lockPath} was lost before release: ${lost}`);
    }
    if (this.mode === 'shared') {
      await this.fs.unlink(join(this.lockPath, this.entry)).catch((err) => {
        if (errnoOf(err) !== 'ENOENT')
          throw classifyFsError(err, { op: 'lock.release', path: this.lockPath });
      });
      return;
    }
    const rec = { ...ownerRecord(this.token, 'exclusive', undefined, this.fencingToken), released: true };
    await publish(this.fs, this.lockPath, this.entry, rec, 'rename');
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.release();
  }
}

export type { Handle as LeaseLockHandle };

/**
 * Locks held by this process. One process-wide `exit` hook releases them (normal exit and
 * `process.exit()`); txkit installs no signal handlers, so a process killed by a signal
 * leaves its locks to the dead-owner check (immediate on the same host).
 */
const held = new Set<Handle>();
let exitHookInstalled = false;
function trackHeld(h: Handle) {
  held.add(h);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const x of held) x.releaseAtExit();
    });
  }
}
function untrackHeld(h: Handle) {
  held.delete(h);
}

/** Releases every lock this process holds (graceful shutdown). Errors are collected, not thrown early. */
export async function releaseAllLocks(): Promise<unknown[]> {
  const errors: unknown[] = [];
  for (const h of [...held]) await h.release().catch((e: unknown) => errors.push(e));
  return errors;
}
