/**
 * The reads an optimistic body may make: they run on the attempt's dedicated connection,
 * after WATCH, so the values they return are guarded until EXEC.
 */
import type { Redis } from 'ioredis';
import { ConnectionLostError } from '../core/errors.js';
import { makeCommand, type RedisArg } from './commands.js';
import { isReplyError, RedisReplyError, TransactionStateError } from './errors.js';

export class WatchedReader {
  #open = true;
  #lost = false;

  constructor(
    private readonly conn: Redis,
    /** Which attempt this is (1 for the first). */
    readonly attempt: number,
  ) {}

  /** True once a read failed because the connection failed (the attempt is then voided). */
  get lostConnection(): boolean {
    return this.#lost;
  }

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
    try {
      return await this.conn.call(cmd.name, ...cmd.args);
    } catch (err) {
      if (isReplyError(err)) throw new RedisReplyError(err);
      this.#lost = true;
      throw new ConnectionLostError('the dedicated connection failed during a read; this attempt is voided', {
        retryable: true,
        cause: err,
      });
    }
  }

  async get(key: RedisArg): Promise<string | null> {
    return (await this.call('get', key)) as string | null;
  }
  async mget(...keys: RedisArg[]): Promise<Array<string | null>> {
    return (await this.call('mget', ...keys)) as Array<string | null>;
  }
  async exists(...keys: RedisArg[]): Promise<number> {
    return (await this.call('exists', ...keys)) as number;
  }
  async hget(key: RedisArg, field: RedisArg): Promise<string | null> {
    return (await this.call('hget', key, field)) as string | null;
  }
  /** The hash as an object (`{}` when the key is missing). */
  async hgetall(key: RedisArg): Promise<Record<string, string>> {
    const flat = (await this.call('hgetall', key)) as string[];
    const out: Record<string, string> = {};
    for (let i = 0; i + 1 < flat.length; i += 2) out[flat[i]!] = flat[i + 1]!;
    return out;
  }
  async smembers(key: RedisArg): Promise<string[]> {
    return (await this.call('smembers', key)) as string[];
  }
  async lrange(key: RedisArg, start: number, stop: number): Promise<string[]> {
    return (await this.call('lrange', key, start, stop)) as string[];
  }
  async zcard(key: RedisArg): Promise<number> {
    return (await this.call('zcard', key)) as number;
  }
  /** The server's `CLIENT ID` for this connection (useful in diagnostics). */
  async clientId(): Promise<number> {
    return (await this.call('client', 'id')) as number;
  }
}
