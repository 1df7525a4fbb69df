/**
 * The in-process queue of optimistic attempts on one key set. Attempts on the same keys
 * would only conflict with each other, so they run in rounds on one leased connection:
 * each round takes every attempt waiting (up to {@link MAX_ROUND}) and commits them with
 * one WATCH and one MULTI/EXEC (see `runRound`). The next round's WATCH is written right
 * behind EXEC, with a GET of each key the round set (read ahead, so the next round's first
 * body needs no round trip): on the same socket they run after that EXEC and see its
 * writes. WATCH still arbitrates against every other client and process; when no round
 * follows, UNWATCH clears it before the connection goes back to the pool. While other
 * callers wait for a pooled connection, the lane gives its own back after each round and
 * leases again behind them.
 */
import type { Redis } from 'ioredis';
import { copyError } from '../core/errors.js';
import type { RedisArg } from './commands.js';
import { canWrite } from './connection.js';
import type { RedisContext } from './context.js';
import { type AttemptRequest, runRound, type SentWatch, sendWatch } from './optimistic-round.js';
import type { WriteOverlay } from './write-overlay.js';

/** Most attempts committed by one round (bounds the EXEC reply and the time bodies wait). */
export const MAX_ROUND = 64;

export class OptimisticLane {
  readonly #queue: AttemptRequest<unknown>[] = [];
  /** The connection rounds run on; replaced when a round leaves it in doubt. */
  #conn: Redis | undefined;
  /** Rounds not yet finished, per connection (a connection is released when it has none). */
  readonly #rounds = new Map<Redis, { running: number; broken: boolean }>();
  #leasing = false;
  /** A round is running its bodies: the next one waits until its EXEC is written. */
  #composing = false;
  /** The WATCH written behind the last EXEC, for the next round on that connection. */
  #ahead: { conn: Redis; watch: SentWatch } | undefined;

  constructor(
    private readonly ctx: RedisContext,
    private readonly keys: readonly RedisArg[],
    private readonly slot: number | undefined,
    /** Called when nothing is queued or running: the owner may forget this lane. */
    private readonly onIdle: () => void,
  ) {}

  submit<T>(request: AttemptRequest<T>): void {
    this.#queue.push(request as AttemptRequest<unknown>);
    this.#next();
  }

  /** Takes back a request still waiting for its round, rejecting it with `err`. */
  withdraw<T>(request: AttemptRequest<T>, err: unknown): void {
    const i = this.#queue.indexOf(request as AttemptRequest<unknown>);
    if (i === -1) return; // its round has it: the round decides
    this.#queue.splice(i, 1);
    request.reject(err);
  }

  #next(): void {
    if (this.#composing || this.#leasing) return;
    if (this.#queue.length === 0) {
      if (this.#rounds.size > 0) return;
      const conn = this.#conn;
      this.#conn = undefined;
      if (conn) this.#giveBack(conn);
      this.onIdle();
      return;
    }
    const conn = this.#conn;
    if (!conn) {
      this.#leasing = true;
      this.ctx.lease(this.slot).then(
        (leased) => {
          this.#leasing = false;
          this.#conn = leased;
          this.#next();
        },
        (err: unknown) => {
          this.#leasing = false;
          for (const request of this.#queue.splice(0)) request.reject(copyError(err));
          this.#next();
        },
      );
      return;
    }
    this.#startRound(conn, this.#queue.splice(0, MAX_ROUND));
  }

  /** Gives a connection with no round running back to the pool, clearing a WATCH written ahead. */
  #giveBack(conn: Redis): void {
    if (this.#ahead?.conn !== conn) {
      this.ctx.release(conn, true);
      return;
    }
    this.#ahead = undefined;
    conn.unwatch().then(
      () => this.ctx.release(conn, true),
      () => this.ctx.release(conn, false),
    );
  }

  #startRound(conn: Redis, batch: AttemptRequest<unknown>[]): void {
    const uses = this.#rounds.get(conn) ?? { running: 0, broken: false };
    uses.running++;
    this.#rounds.set(conn, uses);
    this.#composing = true;
    let written = false;
    const onWritten = (wrote: WriteOverlay) => {
      written = true;
      this.#composing = false;
      if (this.#conn === conn) {
        // Others wait for a connection: this one goes back after the round, and the next
        // round leases again behind them (a busy lane must not starve other key sets).
        if (this.ctx.contended(conn)) this.#conn = undefined;
        else if (canWrite(conn)) {
          const readAhead = this.keys.filter((k) => {
            const value = wrote.lookup(k);
            return typeof value === 'string' || value === null;
          });
          this.#ahead = { conn, watch: sendWatch(conn, this.keys, readAhead) };
        }
      }
      this.#next();
    };
    const requeue = (again: AttemptRequest<unknown>[]) => this.#queue.unshift(...again);
    const watch = this.#ahead?.conn === conn ? this.#ahead.watch : undefined;
    this.#ahead = undefined;
    void runRound(
      this.ctx,
      conn,
      this.keys,
      batch,
      requeue,
      watch ? { watch, onWritten } : { onWritten },
    ).then((clean) => {
      if (!written) this.#composing = false;
      if (!clean) {
        uses.broken = true;
        if (this.#conn === conn) this.#conn = undefined;
        if (this.#ahead?.conn === conn) this.#ahead = undefined;
      }
      if (--uses.running === 0) {
        this.#rounds.delete(conn);
        if (uses.broken) this.ctx.release(conn, false);
        else if (this.#conn !== conn || this.ctx.contended(conn)) {
          if (this.#conn === conn) this.#conn = undefined;
          this.#giveBack(conn);
        }
      }
      this.#next();
    });
  }
}
