/**
 * A durable message queue on the WAL: `enqueue` resolves once the message is fsynced;
 * consumer groups read in LSN order and `ack` their offset (written atomically), so
 * delivery is at-least-once. `compact()` deletes segments every group has acknowledged.
 */
import { join } from 'node:path';
import { InvalidArgumentError } from '../../core/errors.js';
import { atomicWriteJson } from '../atomic-write.js';
import { errnoOf } from '../errors.js';
import { type FsAdapter, nodeFs } from '../fs-adapter.js';
import { mkdirDurable } from '../mkdir-durable.js';
import { openWal, type Wal, type WalOptions } from './wal.js';

export interface QueueMessage {
  lsn: bigint;
  body: Buffer;
}

const GROUP = /^[A-Za-z0-9_.-]{1,100}$/;

export class DurableQueue {
  #offsets: Record<string, string> = {};

  private constructor(
    readonly dir: string,
    private readonly wal: Wal,
    private readonly fs: FsAdapter,
  ) {}

  static async open(dir: string, options: { wal?: WalOptions; fs?: FsAdapter } = {}): Promise<DurableQueue> {
    const fs = options.fs ?? nodeFs;
    await mkdirDurable(fs, dir);
    const q = new DurableQueue(dir, await openWal(join(dir, 'wal'), { ...options.wal, fs }), fs);
    try {
      q.#offsets = JSON.parse((await fs.readFile(join(dir, 'offsets.json'))).toString('utf8')) as Record<
        string,
        string
      >;
    } catch (err) {
      if (errnoOf(err) !== 'ENOENT') throw err;
    }
    return q;
  }

  /** Durable on resolve; returns the message's LSN. */
  async enqueue(body: string | Uint8Array): Promise<bigint> {
    return (await this.wal.append({ type: 1, payload: body })).lsn;
  }

  #group(group: string): string {
    if (!GROUP.test(group))
      throw new InvalidArgumentError('DurableQueue: group must be 1-100 letters, digits, _, . or -');
    return group;
  }

  /** The acknowledged offset of `group` (0 when none). */
  offset(group: string): bigint {
    return BigInt(this.#offsets[this.#group(group)] ?? '0');
  }

  /** Up to `max` messages after the group's acknowledged offset, in LSN order. */
  async read(group: string, max = 100): Promise<QueueMessage[]> {
    if (!Number.isInteger(max) || max < 1) {
      throw new InvalidArgumentError(`DurableQueue.read: max must be an integer >= 1, got ${String(max)}`);
    }
    const out: QueueMessage[] = [];
    await this.wal.replay(
      this.offset(group) + 1n,
      (r) => {
        out.push({ lsn: r.lsn, body: Buffer.from(r.payload) });
      },
      { limit: max },
    );
    return out;
  }

  /**
   * Marks everything up to `lsn` processed for `group` (durable on resolve). Acks run one
   * at a time: each writes the whole offsets file, so concurrent ones must not start from
   * the same old map.
   */
  async ack(group: string, lsn: bigint): Promise<void> {
    const g = this.#group(group);
    const run = () => this.#ackNow(g, lsn);
    const done = this.#acks.then(run, run);
    this.#acks = done.catch(() => {});
    return done;
  }

  #acks: Promise<void> = Promise.resolve();

  async #ackNow(g: string, lsn: bigint): Promise<void> {
    if (lsn <= this.offset(g)) return;
    const next = { ...this.#offsets, [g]: String(lsn) };
    await atomicWriteJson(join(this.dir, 'offsets.json'), next, { fs: this.fs });
    this.#offsets = next;
  }

  /** Deletes segments below the lowest acknowledged offset of all groups. */
  async compact(): Promise<number> {
    const offs = Object.values(this.#offsets).map(BigInt);
    if (offs.length === 0) return 0;
    let min = offs[0]!;
    for (const o of offs) if (o < min) min = o; // bigint: no Math.min
    if (min > this.wal.stats().checkpointLsn) await this.wal.checkpoint(min);
    return this.wal.truncateBefore(min + 1n);
  }

  close(): Promise<void> {
    return this.wal.close();
  }
}
