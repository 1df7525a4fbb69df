/**
 * A small durable key-value store on the WAL: every `set`/`delete` is acknowledged only
 * after its record is fsynced, then applied in memory. `snapshot()` writes the state
 * atomically, records a checkpoint at its LSN, and only then deletes the segments behind the
 * previous snapshot. Recovery loads the newest snapshot whose checksum verifies and replays
 * the WAL after it.
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { InvalidArgumentError } from '../../core/errors.js';
import { atomicWriteJson } from '../atomic-write.js';
import { errnoOf } from '../errors.js';
import { type FsAdapter, nodeFs } from '../fs-adapter.js';
import { mkdirDurable } from '../mkdir-durable.js';
import { WalCorruptionError } from './errors.js';
import { RecordType } from './format.js';
import { readCheckpoint } from './reader.js';
import { openWal, type Wal, type WalOptions } from './wal.js';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

interface SnapshotFile {
  lsn: string;
  created_at: string;
  sha256: string;
  data: Record<string, Json>;
}

const SNAP = /^snapshot-(\d{20})\.json$/;
const snapName = (lsn: bigint) => `snapshot-${String(lsn).padStart(20, '0')}.json`;
const digest = (data: unknown) => createHash('sha256').update(JSON.stringify(data)).digest('hex');

export class KvStore {
  readonly #data = new Map<string, Json>();
  #applied = 0n;

  private constructor(
    readonly dir: string,
    private readonly wal: Wal,
    private readonly fs: FsAdapter,
  ) {}

  /** Opens (or creates) the store in `dir` (`wal/` and snapshots inside). */
  static async open(dir: string, options: { wal?: WalOptions; fs?: FsAdapter } = {}): Promise<KvStore> {
    const fs = options.fs ?? nodeFs;
    await mkdirDurable(fs, dir);
    const wal = await openWal(join(dir, 'wal'), { ...options.wal, fs });
    const store = new KvStore(dir, wal, fs);
    try {
      await store.#load();
    } catch (err) {
      await wal.close();
      throw err;
    }
    return store;
  }

  async #load() {
    const cp = await readCheckpoint(this.fs, this.wal.dir);
    const firstOnDisk = this.wal.stats().firstLsn;
    // Newest verified snapshot not older than what the WAL still holds.
    const names = (await this.fs.readdir(this.dir))
      .filter((n) => SNAP.test(n))
      .sort()
      .reverse();
    const wanted = (cp?.data as { snapshot?: string } | undefined)?.snapshot;
    for (const name of names) {
      if (wanted && name > wanted) continue; // written, but its checkpoint never was
      let snap: SnapshotFile;
      try {
        snap = JSON.parse((await this.fs.readFile(join(this.dir, name))).toString('utf8')) as SnapshotFile;
      } catch (err) {
        if (errnoOf(err) === 'ENOENT' || err instanceof SyntaxError) continue;
        throw err;
      }
      if (snap.sha256 !== digest(snap.data)) continue;
      if (BigInt(snap.lsn) + 1n < firstOnDisk) break; // the records after it are gone
      for (const [k, v] of Object.entries(snap.data)) this.#data.set(k, v);
      this.#applied = BigInt(snap.lsn);
      break;
    }
    if (this.#applied + 1n < firstOnDisk) {
      throw new WalCorruptionError(
        `KvStore ${this.dir}: no valid snapshot covers LSNs before ${firstOnDisk}`,
        {
          segment: '',
          offset: 0,
          lsn: this.#applied + 1n,
        },
      );
    }
    await this.wal.replay(this.#applied + 1n, (r) =>
      this.#apply(r.lsn, r.type, r.key.toString('utf8'), r.payload),
    );
  }

  #apply(lsn: bigint, type: number, key: string, payload: Buffer) {
    if (type === RecordType.SET) this.#data.set(key, JSON.parse(payload.toString('utf8')) as Json);
    else if (type === RecordType.DELETE) this.#data.delete(key);
    if (lsn > this.#applied) this.#applied = lsn;
  }

  /** The value of `key`, or `fallback` when absent (absent and `null` are different). */
  get(key: string, fallback?: Json): Json | undefined {
    return this.#data.has(key) ? this.#data.get(key) : fallback;
  }

  has(key: string): boolean {
    return this.#data.has(key);
  }

  keys(): string[] {
    return [...this.#data.keys()];
  }

  /** Durable on resolve. `value` must be JSON (the record holds the full after-image). */
  async set(key: string, value: Json): Promise<bigint> {
    if (typeof key !== 'string') throw new InvalidArgumentError('KvStore.set: key must be a string');
    const payload = JSON.stringify(value);
    if (payload === undefined) throw new InvalidArgumentError('KvStore.set: value must be JSON-serialisable');
    const { lsn } = await this.wal.append({ type: RecordType.SET, key, payload });
    this.#apply(lsn, RecordType.SET, key, Buffer.from(payload));
    return lsn;
  }

  /** Deletes `key`; false (and no record written) when it was absent. */
  async delete(key: string): Promise<boolean> {
    if (!this.#data.has(key)) return false;
    const { lsn } = await this.wal.append({ type: RecordType.DELETE, key });
    this.#apply(lsn, RecordType.DELETE, key, Buffer.alloc(0));
    return true;
  }

  /**
   * Snapshot → checkpoint → delete the segments behind the previous snapshot → delete any
   * snapshot older than that one. The WAL keeps the records after the previous snapshot, so
   * if the newest fails its checksum, recovery loads the previous one and replays from there.
   */
  async snapshot(): Promise<bigint> {
    const lsn = this.#applied;
    const data = Object.fromEntries(this.#data);
    const name = snapName(lsn);
    const snap: SnapshotFile = {
      lsn: String(lsn),
      created_at: new Date().toISOString(),
      sha256: digest(data),
      data,
    };
    await atomicWriteJson(join(this.dir, name), snap, { fs: this.fs, indent: 0 });
    await this.wal.checkpoint(lsn, { snapshot: name });
    const older = (await this.fs.readdir(this.dir)).filter((n) => SNAP.test(n) && n < name).sort();
    const previous = older.at(-1);
    if (previous === undefined) return lsn; // the log from its start is the fallback
    await this.wal.truncateBefore(BigInt(SNAP.exec(previous)![1]!) + 1n);
    for (const n of older.slice(0, -1)) await this.fs.unlink(join(this.dir, n)).catch(() => {});
    return lsn;
  }

  /** Seed-compatible alias of {@link snapshot}. */
  compact(): Promise<bigint> {
    return this.snapshot();
  }

  stats() {
    let size = 0;
    for (const [k, v] of this.#data) size += k.length + JSON.stringify(v).length;
    return {
      key_count: this.#data.size,
      data_size: size,
      wal_files: this.wal.stats().segments,
      lsn: this.#applied,
    };
  }

  close(): Promise<void> {
    return this.wal.close();
  }
}
