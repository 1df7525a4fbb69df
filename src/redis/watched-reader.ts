/**
 * The reads an optimistic body may make: they run on the attempt's dedicated connection,
 * after WATCH, so the values they return are guarded until EXEC. In a batched round, a
 * key an earlier body of the round writes is read from the {@link WriteOverlay} instead,
 * or the body is deferred to the next round when its value cannot be known here.
 */
import type { Redis } from 'ioredis';
import { ConnectionLostError } from '../core/errors.js';
import { keysOf, makeCommand, type QueuedCommand, type RedisArg } from './commands.js';
import { isReplyError, RedisReplyError, TransactionStateError, WatchConflictError } from './errors.js';
import { keyId, UNKNOWN_VALUE, type WriteOverlay } from './write-overlay.js';

/** Thrown into a body whose read depends on a write of this round that cannot be known. */
export class DeferredReadError extends WatchConflictError {
  constructor() {
    super('this read depends on a write queued earlier in the same round; the body runs again next round');
  }
}

/** The keys a read touches (the common reads without building an ioredis Command). */
function keysRead(cmd: QueuedCommand): readonly RedisArg[] {
  return cmd.name === 'get' || cmd.name === 'mget' || cmd.name === 'exists' ? cmd.args : keysOf(cmd);
}

export class WatchedReader {
  #open = true;
  #lost = false;
  #deferred = false;

  constructor(
    private readonly conn: Redis,
    /** Which attempt this is (1 for the first). */
    readonly attempt: number,
    private readonly overlay?: WriteOverlay,
    /** GETs sent right behind this round's WATCH, by key id. */
    private readonly readAhead?: ReadonlyMap<string, Promise<unknown>>,
  ) {}

  /** True once a read failed because the connection failed (the attempt is then voided). */
  get lostConnection(): boolean {
    return this.#lost;
  }

  /** @internal true once a read had to wait for this round's EXEC (the body runs again) */
  get deferred(): boolean {
    return this.#deferred;
  }

  /** True when the body read something an earlier body of its round is about to write. */
  get readUncommitted(): boolean {
    return this.#readOverlay;
  }
  #readOverlay = false;

  /** @internal ends the read phase; later reads are refused */
  close(): void {
    this.#open = false;
  }

  /**
   * Any read command on the watched connection. A write here is allowed by Redis but
   * aborts this transaction's own WATCH (the server treats it as a modification).
   */
  async call(name: string, ...args: RedisArg[]): Promise<unknown> {
    if (!this.#open)
      throw new TransactionStateError('this attempt is over: read inside the body, before returning');
    const cmd = makeCommand(name, args);
    if (this.overlay && !this.overlay.isEmpty && this.overlay.touches(keysRead(cmd))) {
      return this.#fromOverlay(this.overlay, cmd);
    }
    return this.#reply(this.conn.call(cmd.name, ...cmd.args));
  }

  async #reply(sent: Promise<unknown>): Promise<unknown> {
    try {
      return await sent;
    } catch (err) {
      if (isReplyError(err)) throw new RedisReplyError(err);
      this.#lost = true;
      throw new ConnectionLostError('the dedicated connection failed during a read; this attempt is voided', {
        retryable: true,
        cause: err,
      });
    }
  }

  /** GET, MGET and EXISTS of keys whose pending value is known; anything else is deferred. */
  #fromOverlay(overlay: WriteOverlay, cmd: QueuedCommand): unknown {
    const values = cmd.args.map((k) => overlay.lookup(k));
    const known =
      (cmd.name === 'get' || cmd.name === 'mget' || cmd.name === 'exists') &&
      values.every((v) => v !== undefined && v !== UNKNOWN_VALUE);
    if (!known) {
      this.#deferred = true;
      throw new DeferredReadError();
    }
    this.#readOverlay = true;
    if (cmd.name === 'get') return values[0];
    if (cmd.name === 'mget') return values;
    return values.filter((v) => v !== null).length;
  }

  get(key: RedisArg): Promise<string | null> {
    // The hot path of a batched round: a key an earlier body set, answered without a command.
    const pending =
      this.#open && this.overlay && !this.overlay.isEmpty ? this.overlay.lookup(key) : undefined;
    if (typeof pending === 'string' || pending === null) {
      this.#readOverlay = true;
      return Promise.resolve(pending);
    }
    const ahead =
      this.#open && pending === undefined && this.readAhead?.size
        ? this.readAhead.get(keyId(key))
        : undefined;
    if (ahead) return this.#reply(ahead) as Promise<string | null>;
    return this.call('get', key) as Promise<string | null>;
  }
  mget(...keys: RedisArg[]): Promise<Array<string | null>> {
    return this.call('mget', ...keys) as Promise<Array<string | null>>;
  }
  exists(...keys: RedisArg[]): Promise<number> {
    return this.call('exists', ...keys) as Promise<number>;
  }
  hget(key: RedisArg, field: RedisArg): Promise<string | null> {
    return this.call('hget', key, field) as Promise<string | null>;
  }
  /** The hash as an object (`{}` when the key is missing). */
  async hgetall(key: RedisArg): Promise<Record<string, string>> {
    const flat = (await this.call('hgetall', key)) as string[];
    const out: Record<string, string> = {};
    for (let i = 0; i + 1 < flat.length; i += 2) out[flat[i]!] = flat[i + 1]!;
    return out;
  }
  smembers(key: RedisArg): Promise<string[]> {
    return this.call('smembers', key) as Promise<string[]>;
  }
  lrange(key: RedisArg, start: number, stop: number): Promise<string[]> {
    return this.call('lrange', key, start, stop) as Promise<string[]>;
  }
  zcard(key: RedisArg): Promise<number> {
    return this.call('zcard', key) as Promise<number>;
  }
  /** The server's `CLIENT ID` for this connection (useful in diagnostics). */
  clientId(): Promise<number> {
    return this.call('client', 'id') as Promise<number>;
  }
}
