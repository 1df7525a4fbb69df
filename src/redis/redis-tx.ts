/**
 * `redisTx(client)`: transactions on Redis that say exactly what happened.
 *
 * Redis never rolls back. A MULTI/EXEC either is refused at queue time (nothing applied),
 * or meets a WATCH conflict (nothing applied), or runs every command (a command that
 * fails at run time fails alone, **the others are applied**), or its outcome is unknown
 * (the connection failed after EXEC was sent). txkit reports each of these distinctly.
 *
 * txkit never sends on the caller's client: it opens its own duplicates that never re-send
 * a command after a reconnect. WATCH runs on leased dedicated connections.
 */
import { randomUUID } from 'node:crypto';
import { Cluster, type Redis } from 'ioredis';
import { ConnectionLostError, InvalidArgumentError, InvalidOptionError } from '../core/errors.js';
import { EventHub } from '../core/events.js';
import { type CommandBuilder, keysOf, type QueuedCommand, type RedisArg } from './commands.js';
import { dedicatedNodeConnection, duplicateOwned, type RedisClient, whenReady } from './connection.js';
import type { RedisContext } from './context.js';
import { ExecAbortError, TransactionOutcomeUnknownError } from './errors.js';
import type { RedisEvents, TxStatus } from './events.js';
import { type ExecOutcome, execTransaction } from './exec-transaction.js';
import { commonSlot } from './key-slot.js';
import { RedisMetrics } from './metrics.js';
import { MultiBuilder, type TxResult } from './multi.js';
import { type OptimisticOptions, type OptimisticResult, runOptimistic } from './optimistic.js';
import { OptimisticLane } from './optimistic-lane.js';
import type { Body } from './optimistic-round.js';
import { type CommandTuple, type PipelineOptions, type PipelineResult, runPipeline } from './pipeline.js';
import { DedicatedPool } from './pool.js';
import { ScriptRegistry } from './script-registry.js';

export interface RedisTxOptions {
  /** Dedicated connections for optimistic transactions (per cluster node). Default 10. */
  poolSize?: number;
  /** How long an optimistic transaction waits for a dedicated connection. Default 5000 ms. */
  acquireTimeoutMs?: number;
  /** How long a call waits for txkit's own connection to become ready. Default 10 000 ms. */
  connectTimeoutMs?: number;
}

export interface MultiOptions {
  /** Names the transaction in events and metrics (keep it low-cardinality). */
  name?: string;
}

function checkInt(name: string, v: unknown, min: number, max: number): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new InvalidOptionError(`${name} must be an integer from ${min} to ${max}, got ${String(v)}`);
  }
  return v;
}

/**
 * Transactions, optimistic transactions, pipelines and scripts over one ioredis client
 * (standalone or Cluster). Create one per application and `close()` it at shutdown.
 */
export class RedisTx {
  /** Typed events, also published on diagnostics channels `txkit:redis:<event>`. */
  readonly events = new EventHub<RedisEvents>('txkit:redis:');
  readonly metrics = new RedisMetrics();
  /** Named Lua scripts run by EVALSHA with NOSCRIPT recovery. */
  readonly scripts: ScriptRegistry;
  readonly isCluster: boolean;

  readonly #client: RedisClient;
  readonly #poolSize: number;
  readonly #acquireTimeoutMs: number;
  readonly #connectTimeoutMs: number;
  readonly #pools = new Map<string, DedicatedPool>();
  readonly #leasedFrom = new WeakMap<Redis, DedicatedPool>();
  readonly #lanes = new Map<string, OptimisticLane>();
  readonly #ctx: RedisContext;
  #shared: RedisClient | undefined;
  #closed = false;

  constructor(client: RedisClient, options: RedisTxOptions = {}) {
    if (!client || typeof (client as { duplicate?: unknown }).duplicate !== 'function') {
      throw new InvalidArgumentError('redisTx(client): client must be an ioredis Redis or Cluster instance');
    }
    const known = ['poolSize', 'acquireTimeoutMs', 'connectTimeoutMs'];
    for (const key of Object.keys(options)) {
      if (!known.includes(key))
        throw new InvalidOptionError(`unknown redisTx option '${key}'; allowed: ${known.join(', ')}`);
    }
    this.#client = client;
    this.isCluster = client instanceof Cluster;
    this.#poolSize = checkInt('poolSize', options.poolSize, 1, 1000) ?? 10;
    this.#acquireTimeoutMs = checkInt('acquireTimeoutMs', options.acquireTimeoutMs, 1, 600_000) ?? 5000;
    this.#connectTimeoutMs = checkInt('connectTimeoutMs', options.connectTimeoutMs, 1, 600_000) ?? 10_000;
    this.#ctx = {
      isCluster: this.isCluster,
      events: this.events,
      metrics: this.metrics,
      shared: () => this.#sharedReady(),
      lease: (slot, signal) => this.#lease(slot, signal),
      contended: (conn) => this.#leasedFrom.get(conn)?.contended ?? false,
      release: (conn, healthy) => this.#leasedFrom.get(conn)?.release(conn, healthy),
      lane: (queueKey, keys, slot) => this.#lane(queueKey, keys, slot),
    };
    this.scripts = new ScriptRegistry(this.#ctx);
  }

  #lane(queueKey: string, keys: readonly RedisArg[], slot: number | undefined): OptimisticLane {
    let lane = this.#lanes.get(queueKey);
    if (!lane) {
      // A copy: the lane WATCHes these keys for every later caller too.
      const created = new OptimisticLane(this.#ctx, [...keys], slot, () => {
        if (this.#lanes.get(queueKey) === created) this.#lanes.delete(queueKey);
      });
      lane = created;
      this.#lanes.set(queueKey, lane);
    }
    return lane;
  }

  async #sharedReady(): Promise<RedisClient> {
    if (this.#closed) throw new ConnectionLostError('redisTx is closed', { retryable: false });
    if (!this.#shared || this.#shared.status === 'end') this.#shared = duplicateOwned(this.#client, true);
    if (this.#shared.status !== 'ready') await whenReady(this.#shared, this.#connectTimeoutMs);
    return this.#shared;
  }

  #pool(key: string, create: () => Redis): DedicatedPool {
    let pool = this.#pools.get(key);
    if (!pool) {
      pool = new DedicatedPool(create, { size: this.#poolSize, acquireTimeoutMs: this.#acquireTimeoutMs });
      this.#pools.set(key, pool);
    }
    return pool;
  }

  async #lease(slot: number | undefined, signal?: AbortSignal): Promise<Redis> {
    let pool: DedicatedPool;
    if (this.#client instanceof Cluster) {
      const cluster = (await this.#sharedReady()) as Cluster;
      const nodeKey = slot === undefined ? undefined : cluster.slots[slot]?.[0];
      if (!nodeKey) throw new ConnectionLostError(`no cluster node serves slot ${slot}`, { retryable: true });
      const sep = nodeKey.lastIndexOf(':');
      const host = nodeKey.slice(0, sep);
      const port = Number(nodeKey.slice(sep + 1));
      const base = this.#client.options.redisOptions ?? {};
      pool = this.#pool(nodeKey, () => dedicatedNodeConnection(base, host, port));
    } else {
      const source = this.#client;
      pool = this.#pool('standalone', () => duplicateOwned(source, false) as Redis);
    }
    const conn = await pool.acquire(signal);
    this.#leasedFrom.set(conn, pool);
    return conn;
  }

  #sendMulti(commands: readonly QueuedCommand[], name: string | undefined): Promise<ExecOutcome> {
    if (this.isCluster) {
      try {
        commonSlot(commands.flatMap(keysOf));
      } catch (err) {
        return Promise.reject(err);
      }
    }
    const conn = this.#shared;
    if (this.#closed || !conn || conn.status !== 'ready') {
      return this.#sharedReady().then(() => this.#sendMulti(commands, name));
    }
    const started = this.events.wants('exec') ? performance.now() : 0;
    // Plain promise chaining (not async/await): this is the hot path of every MULTI.
    return execTransaction(conn, commands).then(
      (outcome) => {
        let failed = 0;
        if (outcome.status === 'committed' && outcome.hasErrors) {
          for (const r of outcome.replies) if (!r.ok) failed++;
          this.metrics.inc('redis_tx_partial_failures_total');
        }
        this.#recordMulti(name, outcome.status, commands.length, failed, started);
        return outcome;
      },
      (err: unknown) => {
        let status: TxStatus = 'unknown';
        if (err instanceof ExecAbortError) {
          status = 'exec-abort';
          this.metrics.inc('redis_tx_exec_aborts_total');
        } else if (err instanceof TransactionOutcomeUnknownError) {
          this.metrics.inc('redis_tx_outcome_unknown_total');
        }
        this.#recordMulti(name, status, commands.length, 0, started);
        throw err;
      },
    );
  }

  #recordMulti(
    name: string | undefined,
    status: TxStatus,
    commands: number,
    failed: number,
    started: number,
  ): void {
    this.metrics.inc2('redis_tx_total', 'op', name ?? 'multi', 'status', status);
    if (started && this.events.wants('exec')) {
      const durationMs = performance.now() - started;
      this.events.emit('exec', { txId: randomUUID(), name, status, commands, failed, durationMs });
    }
  }

  /**
   * A MULTI/EXEC transaction. With `build`, queues its commands and runs EXEC; without,
   * returns the builder for `exec()` / `execStrict()` / `discard()`.
   *
   * @example
   * const r = await tx.multi((m) => m.set('{u1}:name', 'Ann').incr('{u1}:visits'));
   * // r.status === 'committed'; r.replies[1] is {ok: true, value: 1} or {ok: false, error}
   */
  multi(): MultiBuilder;
  multi(build: (m: CommandBuilder) => unknown, options?: MultiOptions): Promise<TxResult>;
  multi(
    build?: (m: CommandBuilder) => unknown,
    options: MultiOptions = {},
  ): MultiBuilder | Promise<TxResult> {
    const builder = new MultiBuilder((commands) => this.#sendMulti(commands, options.name));
    if (build === undefined) return builder;
    try {
      if (typeof build !== 'function')
        throw new InvalidArgumentError('multi(build): build must be a function');
      build(builder);
    } catch (err) {
      return Promise.reject(err);
    }
    return builder.exec();
  }

  /**
   * An optimistic transaction: WATCH `keys` on a dedicated connection, let `body` read
   * them, then run the commands it returns in MULTI/EXEC. A conflict (a watched key
   * changed) retries with backoff and full jitter (defaults: 5 attempts, 10 ms base,
   * ×2, 1000 ms cap). Return `abort(reason, value)` to stop without writing.
   *
   * @example
   * const r = await tx.optimistic(['{acct}:a'], async (read) => {
   *   const balance = Number(await read.get('{acct}:a'));
   *   if (balance < 10) return abort('insufficient', balance);
   *   return (m) => m.set('{acct}:a', balance - 10);
   * });
   */
  optimistic<T = undefined>(
    keys: RedisArg[],
    body: Body<T>,
    options?: OptimisticOptions,
  ): Promise<OptimisticResult<T>> {
    return runOptimistic(this.#ctx, keys, body, options);
  }

  /**
   * A pipeline (not atomic) in batches of `batchSize` (default 500), with one result per
   * command. Accepts a builder function or an (async) iterable of `[name, ...args]`.
   *
   * @example
   * const r = await tx.pipeline((p) => { for (let i = 0; i < 1000; i++) p.set(`k${i}`, i); });
   * // r.applied === 1000
   */
  pipeline(
    source: ((p: CommandBuilder) => void) | Iterable<CommandTuple> | AsyncIterable<CommandTuple>,
    options?: PipelineOptions,
  ): Promise<PipelineResult> {
    return runPipeline(this.#ctx, source, options);
  }

  /**
   * `WAIT numReplicas timeoutMs` on txkit's connection: resolves to how many replicas
   * acknowledged every write made so far through `multi()`, pipelines and scripts.
   * EXEC success alone is not durability: replication is asynchronous.
   */
  async waitReplicas(numReplicas: number, timeoutMs: number): Promise<number> {
    checkInt('numReplicas', numReplicas, 0, 1000);
    checkInt('timeoutMs', timeoutMs, 0, 3_600_000);
    const conn = await this.#sharedReady();
    return (await conn.call('wait', numReplicas, timeoutMs)) as number;
  }

  /** Closes txkit's own connections (never the caller's client). */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#pools.values()].map((p) => p.close()));
    this.#shared?.disconnect();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/**
 * Wraps an ioredis client (standalone or Cluster).
 *
 * @example
 * import Redis from 'ioredis';
 * import { redisTx, abort } from 'txkit/redis';
 * const tx = redisTx(new Redis(process.env.REDIS_URL));
 * await tx.multi((m) => m.decrby('{bank}:alice', 100).incrby('{bank}:bob', 100));
 */
export function redisTx(client: RedisClient, options?: RedisTxOptions): RedisTx {
  return new RedisTx(client, options);
}
