/**
 * The write-ahead log: `openWal(dir)` recovers (torn tail truncated, corruption refused),
 * then `append()` resolves only after the record is fsynced. Concurrent appends share one
 * write + one fdatasync (group commit): while an fsync is in flight, new records queue and
 * form the next batch. A failed fsync is never retried: the WAL fails (fail-stop).
 */
import { join } from 'node:path';
import { InvalidArgumentError, InvalidOptionError } from '../../core/errors.js';
import { atomicWriteJson } from '../atomic-write.js';
import { classifyFsError, FileLockTimeoutError } from '../errors.js';
import { fsEvents } from '../events.js';
import { type FsAdapter, type FsFile, nodeFs } from '../fs-adapter.js';
import { type LockHandle, lock } from '../lock.js';
import { mkdirDurable } from '../mkdir-durable.js';
import { writevAll } from '../write-all.js';
import { WalBackpressureError, WalClosedError, WalFailedError, WalLockedError } from './errors.js';
import {
  encodeRecord,
  encodeSegmentHeader,
  RecordType,
  SEGMENT_HEADER_BYTES,
  segmentName,
  type WalRecord,
} from './format.js';
import { CHECKPOINT_FILE, DEFAULT_MAX_RECORD_BYTES, scanSegment } from './reader.js';
import { recoverWalDir, type Segment } from './recovery.js';

export interface WalOptions {
  /** Rotate to a new segment past this size. Default 10 MiB. */
  maxSegmentBytes?: number;
  /** Largest key + payload. Default 16 MiB. */
  maxRecordBytes?: number;
  /** Appends wait (or reject with `nonBlocking`) while more than this waits for fsync. Default 64 MiB. */
  maxPendingBytes?: number;
  /**
   * `'group'` (default): concurrent appends share one fsync. `'sync'`: one fsync per record.
   * Both resolve only after the record is durable.
   */
  durability?: 'group' | 'sync';
  /** Extra wait before a batch is written, to gather more appenders. Default 0. */
  flushDelayMs?: number;
  /** Invalid data in a sealed segment: `'fail'` (default) or `'truncate'` (drop it and all after). */
  onCorruption?: 'fail' | 'truncate';
  /** Take the directory's writer lock (`LOCK.lock`). Default true. */
  lock?: boolean;
  fs?: FsAdapter;
}

export interface WalRecordInput {
  type?: number;
  key?: string | Uint8Array;
  payload?: string | Uint8Array;
}

export type WalState = 'open' | 'failed' | 'closed';

export interface WalStats {
  state: WalState;
  /** LSN of the last durable record (0 when empty). */
  durableLsn: bigint;
  nextLsn: bigint;
  /** LSN of the oldest record still on disk. */
  firstLsn: bigint;
  checkpointLsn: bigint;
  segments: number;
  appends: number;
  fsyncs: number;
  batches: number;
  bytesWritten: number;
  pendingBytes: number;
  tornTailTruncations: number;
}

interface Pending {
  buf: Buffer;
  lsn: bigint;
  resolve: () => void;
  reject: (e: unknown) => void;
}

const toBytes = (v: string | Uint8Array | undefined) =>
  v === undefined ? Buffer.alloc(0) : typeof v === 'string' ? Buffer.from(v, 'utf8') : v;

function positiveInt(name: string, v: number | undefined, def: number, min = 1): number {
  if (v === undefined) return def;
  if (!Number.isInteger(v) || v < min)
    throw new InvalidOptionError(`openWal: ${name} must be an integer >= ${min}, got ${String(v)}`);
  return v;
}

/**
 * Opens (creating if needed) the WAL in `dir` and runs recovery.
 *
 * @example
 * const wal = await openWal('data/wal');
 * const { lsn } = await wal.append({ type: RecordType.SET, key: 'a', payload: '1' });
 * await wal.replay(1n, (r) => apply(r));
 * await wal.close();
 */
export async function openWal(dir: string, options: WalOptions = {}): Promise<Wal> {
  if (typeof dir !== 'string' || dir.length === 0)
    throw new InvalidArgumentError('openWal: dir must be a non-empty string');
  const wal = new Wal(dir, options);
  try {
    await wal.recover();
  } catch (err) {
    await wal.close().catch(() => {}); // release the lock and any segment opened so far
    throw err;
  }
  return wal;
}

export class Wal {
  readonly dir: string;
  readonly #fs: FsAdapter;
  readonly #maxSegment: number;
  readonly #maxRecord: number;
  readonly #maxPending: number;
  readonly #sync: boolean;
  readonly #delay: number;
  readonly #o: WalOptions;
  #lock: LockHandle | undefined;
  #file: FsFile | undefined;
  #segments: Segment[] = [];
  #offset = 0;
  #durableOffset = 0;
  #nextLsn = 1n;
  #durableLsn = 0n;
  #checkpointLsn = 0n;
  #state: WalState = 'open';
  #failure: unknown;
  #pending: Pending[] = [];
  #pendingBytes = 0;
  #flushing = false;
  #scheduled = false;
  #idle: (() => void)[] = [];
  #drained: (() => void)[] = [];
  #stats = { appends: 0, fsyncs: 0, batches: 0, bytesWritten: 0, tornTailTruncations: 0 };

  constructor(dir: string, o: WalOptions) {
    this.dir = dir;
    this.#o = o;
    this.#fs = o.fs ?? nodeFs;
    this.#maxSegment = positiveInt(
      'maxSegmentBytes',
      o.maxSegmentBytes,
      10 * 1024 * 1024,
      SEGMENT_HEADER_BYTES + 1,
    );
    this.#maxRecord = positiveInt('maxRecordBytes', o.maxRecordBytes, DEFAULT_MAX_RECORD_BYTES);
    this.#maxPending = positiveInt('maxPendingBytes', o.maxPendingBytes, 64 * 1024 * 1024);
    this.#delay = positiveInt('flushDelayMs', o.flushDelayMs, 0, 0);
    if (o.durability !== undefined && o.durability !== 'group' && o.durability !== 'sync') {
      throw new InvalidOptionError(
        `openWal: durability must be 'group' or 'sync', got ${String(o.durability)}`,
      );
    }
    if (o.onCorruption !== undefined && o.onCorruption !== 'fail' && o.onCorruption !== 'truncate') {
      throw new InvalidOptionError(`openWal: onCorruption must be 'fail' or 'truncate'`);
    }
    this.#sync = o.durability === 'sync';
  }

  /** Recovery scan; called by {@link openWal}. */
  async recover(): Promise<void> {
    const fs = this.#fs;
    const op = { op: 'openWal', path: this.dir };
    try {
      await mkdirDurable(fs, this.dir);
    } catch (err) {
      throw classifyFsError(err, { ...op, step: 'create directory' });
    }
    if (this.#o.lock ?? true) {
      try {
        this.#lock = await lock(join(this.dir, 'LOCK'), { timeoutMs: 0, fs, label: 'wal writer' });
      } catch (err) {
        if (err instanceof FileLockTimeoutError) {
          throw new WalLockedError(`openWal: ${this.dir} is open for writing elsewhere`, err.holder);
        }
        throw err;
      }
    }
    try {
      await this.#scan();
    } catch (err) {
      await this.#lock?.release().catch(() => {});
      await this.#file?.close().catch(() => {});
      throw classifyFsError(err, { ...op, step: 'recovery' });
    }
  }

  async #scan(): Promise<void> {
    const r = await recoverWalDir(this.#fs, this.dir, {
      maxRecordBytes: this.#maxRecord,
      onCorruption: this.#o.onCorruption ?? 'fail',
    });
    this.#checkpointLsn = r.checkpointLsn;
    this.#stats.tornTailTruncations = r.truncations;
    this.#segments = r.segments;
    if (this.#segments.length === 0) {
      const first = this.#checkpointLsn + 1n;
      this.#segments = [];
      await this.#createSegment(r.lastSeq + 1n, first);
      this.#nextLsn = first;
    } else {
      this.#nextLsn = r.nextLsn;
      this.#file = await this.#fs.open(join(this.dir, this.#segments.at(-1)!.name), 'r+');
      this.#offset = (await this.#file.stat()).size;
      this.#durableOffset = this.#offset;
    }
    this.#durableLsn = this.#nextLsn - 1n;
  }

  async #createSegment(seq: bigint, firstLsn: bigint) {
    const name = segmentName(seq);
    const f = await this.#fs.open(join(this.dir, name), 'wx+', 0o644);
    try {
      const header = encodeSegmentHeader(seq, firstLsn);
      await writevAll(f, [header], 0, name);
      await f.sync();
      await this.#fs.syncDir(this.dir); // the new name must be durable before records in it are acked
    } catch (err) {
      await f.close().catch(() => {});
      throw err;
    }
    this.#file = f;
    this.#offset = SEGMENT_HEADER_BYTES;
    this.#durableOffset = SEGMENT_HEADER_BYTES;
    this.#segments.push({ name, seq, firstLsn });
  }

  #assertWritable(op: string) {
    if (this.#state === 'failed') {
      throw new WalFailedError(`wal.${op}: the WAL in ${this.dir} failed and must be reopened`, {
        cause: this.#failure,
      });
    }
    if (this.#state === 'closed') throw new WalClosedError(`wal.${op}: the WAL in ${this.dir} is closed`);
  }

  #encode(r: WalRecordInput): { type: number; key: Uint8Array; payload: Uint8Array } {
    const type = r.type ?? RecordType.OTHER;
    if (!Number.isInteger(type) || type < 0 || type > 255)
      throw new InvalidArgumentError('wal.append: type must be an integer 0..255');
    const key = toBytes(r.key);
    const payload = toBytes(r.payload);
    if (key.length + payload.length > this.#maxRecord) {
      throw new InvalidArgumentError(
        `wal.append: record of ${key.length + payload.length} bytes exceeds maxRecordBytes ${this.#maxRecord}`,
      );
    }
    return { type, key, payload };
  }

  /** Appends one record; resolves with its LSN once it is durable. */
  async append(record: WalRecordInput, options: { nonBlocking?: boolean } = {}): Promise<{ lsn: bigint }> {
    const { firstLsn } = await this.appendBatch([record], options);
    return { lsn: firstLsn };
  }

  /** Appends records with consecutive LSNs; resolves once all are durable. */
  async appendBatch(
    records: readonly WalRecordInput[],
    options: { nonBlocking?: boolean } = {},
  ): Promise<{ firstLsn: bigint; lastLsn: bigint }> {
    this.#assertWritable('append');
    if (records.length === 0) throw new InvalidArgumentError('wal.appendBatch: no records');
    const encoded = records.map((r) => this.#encode(r));
    while (this.#pendingBytes > this.#maxPending) {
      if (options.nonBlocking)
        throw new WalBackpressureError(`wal.append: over ${this.#maxPending} bytes wait for fsync`);
      await new Promise<void>((resolve) => this.#drained.push(resolve));
      this.#assertWritable('append');
    }
    const firstLsn = this.#nextLsn;
    const done: Promise<void>[] = [];
    for (const e of encoded) {
      const lsn = this.#nextLsn++;
      const buf = encodeRecord(e.type, lsn, e.key, e.payload);
      done.push(
        new Promise<void>((resolve, reject) => {
          this.#pending.push({ buf, lsn, resolve, reject });
        }),
      );
      this.#pendingBytes += buf.length;
      this.#stats.appends++;
    }
    this.#schedule();
    await Promise.all(done);
    return { firstLsn, lastLsn: firstLsn + BigInt(records.length) - 1n };
  }

  #schedule() {
    if (this.#flushing || this.#scheduled) return;
    this.#scheduled = true;
    const run = () => {
      this.#scheduled = false;
      void this.#flushLoop();
    };
    if (this.#delay > 0) setTimeout(run, this.#delay);
    else setImmediate(run); // let appends made in this turn join the batch
  }

  async #flushLoop(): Promise<void> {
    if (this.#flushing) return;
    this.#flushing = true;
    try {
      while (this.#pending.length > 0 && this.#state !== 'failed') {
        const batch = this.#sync ? this.#pending.splice(0, 1) : this.#pending.splice(0);
        await this.#writeBatch(batch);
        for (const d of this.#drained.splice(0)) d();
      }
    } finally {
      this.#flushing = false;
      for (const d of this.#drained.splice(0)) d();
      if (this.#pending.length === 0) for (const i of this.#idle.splice(0)) i();
    }
  }

  async #writeBatch(batch: Pending[]): Promise<void> {
    let bytes = 0;
    for (const p of batch) bytes += p.buf.length;
    let step = 'write';
    try {
      let i = 0;
      while (i < batch.length) {
        // Records never span segments: rotate before a record that would not fit.
        if (this.#offset > SEGMENT_HEADER_BYTES && this.#offset + batch[i]!.buf.length > this.#maxSegment) {
          step = 'fsync segment';
          await this.#file!.datasync();
          await this.#file!.close();
          this.#durableOffset = this.#offset;
          step = 'create segment';
          await this.#createSegment(this.#segments.at(-1)!.seq + 1n, batch[i]!.lsn);
        }
        const bufs: Buffer[] = [];
        let size = 0;
        while (
          i < batch.length &&
          (size === 0 || this.#offset + size + batch[i]!.buf.length <= this.#maxSegment)
        ) {
          bufs.push(batch[i]!.buf);
          size += batch[i]!.buf.length;
          i++;
        }
        step = 'write';
        await writevAll(this.#file!, bufs, this.#offset, this.dir);
        this.#offset += size;
      }
      step = 'fsync';
      await this.#file!.datasync();
      this.#stats.fsyncs++;
    } catch (err) {
      const e = classifyFsError(err, { op: 'wal.append', step, path: this.dir }, step.startsWith('fsync'));
      await this.#onWriteError(e, step, batch);
      return;
    }
    this.#durableOffset = this.#offset;
    this.#durableLsn = batch.at(-1)!.lsn;
    this.#pendingBytes -= bytes;
    this.#stats.batches++;
    this.#stats.bytesWritten += bytes;
    for (const p of batch) p.resolve();
  }

  /**
   * A write error: every waiter (this batch and all queued after it, whose LSNs follow) is
   * rejected, and the file is cut back to its durable end. An fsync error, or a failed cut,
   * is fail-stop.
   */
  async #onWriteError(err: unknown, step: string, batch: Pending[]) {
    const all = [...batch, ...this.#pending.splice(0)];
    this.#pendingBytes = 0;
    let failStop = step.startsWith('fsync') || step === 'create segment';
    if (!failStop) {
      try {
        await this.#file!.truncate(this.#durableOffset);
        await this.#file!.datasync();
        this.#offset = this.#durableOffset;
        this.#nextLsn = this.#durableLsn + 1n;
      } catch {
        failStop = true;
      }
    }
    if (failStop) this.#fail(err);
    for (const p of all) p.reject(err);
  }

  #fail(err: unknown) {
    if (this.#state === 'failed') return;
    this.#state = 'failed';
    this.#failure = err;
    fsEvents.emit('wal-failed', { dir: this.dir, error: err });
  }

  /** Resolves when everything appended before the call is durable. */
  async flush(): Promise<void> {
    if (this.#pending.length === 0 && !this.#flushing) return;
    await new Promise<void>((resolve) => this.#idle.push(resolve));
    this.#assertWritable('flush');
  }

  /**
   * Streams durable records with `lsn >= fromLsn`, in LSN order; with `limit`, stops after
   * that many (and reads no segment beyond the one holding the last).
   */
  async replay(
    fromLsn: bigint,
    onRecord: (r: WalRecord) => void | Promise<void>,
    options: { limit?: number } = {},
  ) {
    const limit = options.limit ?? Number.POSITIVE_INFINITY;
    if (!(limit >= 0)) throw new InvalidArgumentError(`wal.replay: limit must be >= 0, got ${limit}`);
    let count = 0;
    let lastLsn = fromLsn - 1n;
    const segs = [...this.#segments];
    for (let i = 0; i < segs.length && count < limit; i++) {
      const s = segs[i]!;
      const next = segs[i + 1];
      if (next && next.firstLsn <= fromLsn) continue;
      // Only the active segment can hold bytes that are not durable yet; a segment sealed by a
      // rotation during this replay is durable in full.
      const upTo = s === this.#segments.at(-1) ? this.#durableOffset : undefined;
      await scanSegment(this.#fs, this.dir, s, {
        maxRecordBytes: this.#maxRecord,
        ...(upTo !== undefined ? { upTo } : {}),
        onRecord: async (r) => {
          if (r.lsn < fromLsn || r.lsn > this.#durableLsn || count >= limit) return;
          await onRecord(r);
          count++;
          lastLsn = r.lsn;
        },
      });
    }
    return { lastLsn, count };
  }

  /**
   * Records durably (atomic write + directory fsync) that everything up to `lsn` is
   * persisted elsewhere. Only then may segments below it be deleted.
   */
  async checkpoint(lsn: bigint, data?: unknown): Promise<void> {
    this.#assertWritable('checkpoint');
    if (lsn > this.#durableLsn)
      throw new InvalidArgumentError(
        `wal.checkpoint: LSN ${lsn} is not durable yet (durable: ${this.#durableLsn})`,
      );
    if (lsn < this.#checkpointLsn)
      throw new InvalidArgumentError(
        `wal.checkpoint: LSN ${lsn} is below the current checkpoint ${this.#checkpointLsn}`,
      );
    const cp: Record<string, unknown> = { checkpoint_lsn: String(lsn), timestamp: new Date().toISOString() };
    if (data !== undefined) cp.data = data;
    await atomicWriteJson(join(this.dir, CHECKPOINT_FILE), cp, { fs: this.#fs });
    this.#checkpointLsn = lsn;
  }

  /**
   * Deletes whole segments whose last record is below `lsn` **and** covered by the durable
   * checkpoint, keeping the newest `keepLastN` of those. The active segment is never
   * deleted. Returns the number deleted.
   */
  async truncateBefore(lsn: bigint, keepLastN = 0): Promise<number> {
    this.#assertWritable('truncateBefore');
    const limit = lsn - 1n < this.#checkpointLsn ? lsn - 1n : this.#checkpointLsn;
    const deletable: Segment[] = [];
    for (let i = 0; i < this.#segments.length - 1; i++) {
      const lastLsn = this.#segments[i + 1]!.firstLsn - 1n;
      if (lastLsn <= limit) deletable.push(this.#segments[i]!);
      else break;
    }
    const doomed = deletable.slice(0, Math.max(0, deletable.length - keepLastN));
    for (const s of doomed) await this.#fs.unlink(join(this.dir, s.name)); // oldest first: no holes
    if (doomed.length) await this.#fs.syncDir(this.dir);
    this.#segments.splice(0, doomed.length);
    return doomed.length;
  }

  /** Seed-compatible name: deletes checkpointed segments, keeping the newest `keepLastN` of them. */
  cleanupOldLogs(keepLastN = 3): Promise<number> {
    return this.truncateBefore(this.#checkpointLsn + 1n, keepLastN);
  }

  stats(): WalStats {
    return {
      state: this.#state,
      durableLsn: this.#durableLsn,
      nextLsn: this.#nextLsn,
      firstLsn: this.#segments[0]?.firstLsn ?? this.#nextLsn,
      checkpointLsn: this.#checkpointLsn,
      segments: this.#segments.length,
      pendingBytes: this.#pendingBytes,
      ...this.#stats,
    };
  }

  get state(): WalState {
    return this.#state;
  }

  /** Drains queued appends (they become durable), closes the file, releases the lock. Idempotent. */
  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    if (this.#state === 'open') {
      this.#schedule();
      await this.flush().catch(() => {});
    }
    this.#state = 'closed';
    await this.#file?.close().catch(() => {});
    this.#file = undefined;
    await this.#lock?.release().catch(() => {});
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
