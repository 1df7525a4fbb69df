/**
 * A small pool of dedicated connections for WATCH…EXEC. WATCH state belongs to a
 * connection, so an optimistic transaction must own its connection from WATCH to EXEC;
 * a shared, multiplexed socket would let another caller's EXEC or UNWATCH clear it.
 */
import type { Redis } from 'ioredis';
import { PoolTimeoutError, TransactionCancelledError } from '../core/errors.js';
import { whenReady } from './connection.js';

export interface PoolOptions {
  /** Most connections open at once. Default 10. */
  size: number;
  /** How long `acquire` waits for a free connection. Default 5000 ms. */
  acquireTimeoutMs: number;
}

interface Waiter {
  resolve: (conn: Redis) => void;
  reject: (err: Error) => void;
}

export class DedicatedPool {
  readonly #idle: Redis[] = [];
  readonly #waiters: Waiter[] = [];
  #open = 0;
  #closed = false;

  constructor(
    private readonly create: () => Redis,
    private readonly options: PoolOptions,
  ) {}

  /** True while callers wait for a connection (all are leased). */
  get contended(): boolean {
    return this.#waiters.length > 0;
  }

  /** Leases a ready connection. Give it back with {@link release}. */
  async acquire(signal?: AbortSignal): Promise<Redis> {
    if (this.#closed) throw new PoolTimeoutError('the connection pool is closed');
    if (signal?.aborted) {
      throw new TransactionCancelledError('cancelled while waiting for a connection', {
        cause: signal.reason,
      });
    }
    for (;;) {
      const idle = this.#idle.pop();
      if (!idle) break;
      if (idle.status === 'ready') return idle;
      this.#drop(idle);
    }
    if (this.#open < this.options.size) {
      this.#open++;
      const conn = this.create();
      try {
        await whenReady(conn, this.options.acquireTimeoutMs);
        return conn;
      } catch (err) {
        this.#drop(conn);
        this.#wakeWithNew(); // the slot is free again: let a waiter try (and fail fast if the server is down)
        throw err;
      }
    }
    return new Promise<Redis>((resolve, reject) => {
      const waiter: Waiter = {
        resolve: (conn) => {
          cleanup();
          resolve(conn);
        },
        reject: (err) => {
          cleanup();
          reject(err);
        },
      };
      const onAbort = () =>
        waiter.reject(
          new TransactionCancelledError('cancelled while waiting for a connection', {
            cause: signal?.reason,
          }),
        );
      const timer = setTimeout(
        () =>
          waiter.reject(
            new PoolTimeoutError(
              `no dedicated Redis connection free after ${this.options.acquireTimeoutMs} ms ` +
                `(all ${this.options.size} leased); raise poolSize or shorten optimistic transactions`,
            ),
          ),
        this.options.acquireTimeoutMs,
      );
      const cleanup = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        const i = this.#waiters.indexOf(waiter);
        if (i !== -1) this.#waiters.splice(i, 1);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiters.push(waiter);
    });
  }

  /** Returns a connection. `healthy: false` (or a connection that is not ready) destroys it. */
  release(conn: Redis, healthy: boolean): void {
    if (!healthy || conn.status !== 'ready' || this.#closed) {
      this.#drop(conn);
      this.#wakeWithNew();
      return;
    }
    const waiter = this.#waiters.shift();
    if (waiter) waiter.resolve(conn);
    else this.#idle.push(conn);
  }

  #drop(conn: Redis): void {
    this.#open--;
    conn.disconnect();
  }

  /** A slot was freed by a destroyed connection: let the oldest waiter open a new one. */
  #wakeWithNew(): void {
    const waiter = this.#waiters.shift();
    if (!waiter) return;
    this.acquire().then(waiter.resolve, waiter.reject);
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const w of this.#waiters.splice(0)) w.reject(new PoolTimeoutError('the connection pool was closed'));
    for (const conn of this.#idle.splice(0)) this.#drop(conn);
  }
}
