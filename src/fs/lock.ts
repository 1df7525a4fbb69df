/**
 * Cross-process lease locks (shared/exclusive) on a lock directory next to the target.
 *
 * Layout of `<target>.lock/`:
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
import { basename, dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { InvalidArgumentError, InvalidOptionError, TransactionCancelledError } from '../core/errors.js';
import { classifyFsError, errnoOf, FileLockTimeoutError, LockCompromisedError } from './errors.js';
import { fsEvents } from './events.js';
import { type FsAdapter, nodeFs } from './fs-adapter.js';
import { currentProcess, ownerLiveness, type ProcessIdentity } from './process-identity.js';

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

const MODES: readonly LockMode[] = ['shared', 'exclusive'];
const EPOCH_DIGITS = 16;
const epochName = (n: number) => `x.${String(n).padStart(EPOCH_DIGITS, '0')}`;

interface Resolved {
  mode: LockMode;
  timeoutMs: number;
  pollIntervalMs: number;
  staleMs: number;
  updateMs: number;
}

function resolveOptions(o: LockOptions): Resolved {
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

interface Entry {
  record: OwnerRecord | undefined;
  mtimeMs: number;
}

/** Reads the lock directory: epochs (ascending) and reader entry names. */
async function scan(fs: FsAdapter, dir: string): Promise<{ epochs: number[]; readers: string[] }> {
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

async function readEntry(fs: FsAdapter, path: string): Promise<Entry | undefined> {
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

async function publish(
  fs: FsAdapter,
  dir: string,
  name: string,
  record: OwnerRecord,
  how: 'link' | 'rename',
) {
  const tmp = join(dir, `.t.${record.token}.${Math.random().toString(36).slice(2)}`);
  const f = await fs.open(tmp, 'wx', 0o644);
  try {
    const buf = Buffer.from(JSON.stringify(record));
    await f.write(buf, 0, buf.length, 0);
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

function ownerRecord(token: string, mode: LockMode, label: string | undefined, epoch?: number): OwnerRecord {
  const rec: OwnerRecord = { ...currentProcess(), token, mode, acquiredAt: new Date().toISOString() };
  if (epoch !== undefined) rec.epoch = epoch;
  if (label !== undefined) rec.label = label;
  return rec;
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
    const { epochs } = await scan(fs, dir);
    const m = epochs.at(-1) ?? 0;
    const current = m > 0 ? await readEntry(fs, join(dir, epochName(m))) : undefined;
    if (m > 0 && !freeReason(current, r.staleMs)) return { ok: false, holder: current?.record };
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
  const r = resolveOptions(options);
  const fs = options.fs ?? nodeFs;
  const dir = options.lockPath ? resolve(options.lockPath) : await lockPathFor(target, fs);
  return acquireAt(fs, dir, r, options, performance.now() + r.timeoutMs);
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

async function acquireAt(
  fs: FsAdapter,
  dir: string,
  r: Resolved,
  o: LockOptions,
  deadline: number,
): Promise<LockHandle> {
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
    const { epochs } = await scan(fs, dir);
    const m = epochs.at(-1) ?? 0;
    const writer = m > 0 ? await readEntry(fs, join(dir, epochName(m))) : undefined;
    if (m === 0 || freeReason(writer, r.staleMs)) {
      const entry = `r.${token}`;
      await publish(fs, dir, entry, ownerRecord(token, 'shared', o.label), 'rename');
      // Check again after publishing: a writer that took a slot meanwhile sees our entry
      // and waits, or we see its slot and step back. Never both in.
      const again = await scan(fs, dir);
      const m2 = again.epochs.at(-1) ?? 0;
      const w2 = m2 > 0 ? await readEntry(fs, join(dir, epochName(m2))) : undefined;
      if (m2 === 0 || freeReason(w2, r.staleMs)) {
        return new Handle(fs, dir, 'shared', token, m2, entry, r, o.onCompromised);
      }
      await fs.unlink(join(dir, entry)).catch(() => {});
      await waitTurn(r, deadline, o.signal, dir, w2?.record);
      continue;
    }
    await waitTurn(r, deadline, o.signal, dir, writer?.record);
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
  const { epochs, readers } = await scan(fs, dir);
  const now = Date.now();
  const status: LockStatus = { lockPath: dir, readers: [], locked: false };
  const m = epochs.at(-1);
  if (m !== undefined) {
    const e = await readEntry(fs, join(dir, epochName(m)));
    const free = freeReason(e, staleMs, now);
    status.exclusive = { epoch: m, owner: e?.record, heartbeatAgeMs: e ? now - e.mtimeMs : 0, free };
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
    throw new FileLockTimeoutError(
      `lock ${status.lockPath} is held by a live owner; use force to break it`,
      status,
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
