/**
 * PostgreSQL as a txkit resource, on a `pg.Pool`.
 *
 * - BEGIN carries the isolation level, READ ONLY and DEFERRABLE in one statement; the level
 *   reported is the one PostgreSQL really runs (READ UNCOMMITTED runs as READ COMMITTED).
 * - A statement error aborts a PostgreSQL transaction: the Tx fails fast until it rolls
 *   back (or back to a savepoint).
 * - COMMIT's command tag is checked: `ROLLBACK` means it was rolled back, never success.
 *   A connection lost after COMMIT was sent is an unknown outcome, never retried.
 * - A connection goes back to the pool only when the server says it is idle (ReadyForQuery
 *   `I`) and no cancel request can still hit it; otherwise it is destroyed.
 * - Waiting for a connection is bounded: a starved pool (`requires_new` holding
 *   connections) fails with `PoolTimeoutError` that says so, instead of hanging.
 */
import type pg from 'pg';
import {
  ConnectionLostError,
  InvalidArgumentError,
  InvalidOptionError,
  PoolTimeoutError,
  TransactionTimeoutError,
  TxkitError,
} from '../../core/errors.js';
import { EventHub } from '../../core/events.js';
import type {
  AutocommitRequest,
  BeginRequest,
  ExecuteResult,
  IsolationLevel,
  Params,
  PreparedInfo,
  Resource,
  ResourceTx,
} from '../../core/resource.js';
import { assertNoTransactionControl } from '../shared/statement-guard.js';
import { beginSql, POSTGRES_CAPABILITIES } from './capabilities.js';
import { classifyPgError } from './errors.js';
import {
  affected,
  type CallbackClient,
  Lease,
  type PgClient,
  type PgResourceEvents,
  type PgResult,
  type PoolEventInfo,
  positional,
  rowsOf,
  sendStatement,
} from './lease.js';
import {
  type PostgresTransactionOptions,
  type ResolvedPostgresOptions,
  resolveTxOptions,
} from './options.js';
import { PgTx } from './pg-tx.js';
import { commitPrepared, listPrepared, preflightPrepared, rollbackPrepared } from './prepared.js';
import { discardIfStale } from './statement-names.js';

export { beginSql, POSTGRES_CAPABILITIES } from './capabilities.js';
export type { PgResourceEvents } from './lease.js';
export { PgTx } from './pg-tx.js';

export class PostgresResource implements Resource {
  readonly kind = 'postgres';
  readonly capabilities = POSTGRES_CAPABILITIES;
  readonly events = new EventHub<PgResourceEvents>('txkit:pg:');
  readonly pool: pg.Pool;
  #serverDefaultIsolation: IsolationLevel | undefined;
  #closed = false;

  constructor(readonly options: ResolvedPostgresOptions) {
    this.pool = options.pool;
    // An idle pooled client whose socket fails emits 'error' on the pool: never crash for it.
    this.pool.on('error', (error, client) => {
      this.events.emit('error', { source: 'pool', error });
      if (this.events.wants('pool:error'))
        this.events.emit('pool:error', { ...this.#poolInfo(client), error });
    });
    for (const name of ['connect', 'acquire', 'release', 'remove'] as const) {
      const event = `pool:${name}` as const;
      // pg-pool passes (err, client) to 'release' and (client) to the others.
      this.pool.on(name as 'connect', (...args: unknown[]) => {
        if (!this.events.wants(event)) return;
        const client = args.find((a): a is PgClient => typeof a === 'object' && a !== null && 'query' in a);
        this.events.emit(event, this.#poolInfo(client));
      });
    }
  }

  #poolInfo(client: PgClient | pg.PoolClient | undefined): PoolEventInfo {
    const p = this.pool;
    return {
      processId: (client as PgClient | undefined)?.processID,
      total: p.totalCount,
      idle: p.idleCount,
      waiting: p.waitingCount,
    };
  }

  classify(err: unknown): TxkitError {
    return classifyPgError(err);
  }

  #guard(sql: string): void {
    if (typeof sql !== 'string') throw new InvalidArgumentError('SQL must be a string');
    if (!this.options.allowRawTransactionControl) assertNoTransactionControl(sql);
  }

  /** Suspended transactions of this resource in the caller's chain (each holds a connection). */
  #suspendedHere(suspended: readonly ResourceTx[]): PgTx[] {
    return suspended.filter((s): s is PgTx => s instanceof PgTx && s.resource === this);
  }

  /** Checks out a connection, waiting at most `acquireTimeoutMs` (and never past `deadline`). */
  acquire(what: string, suspended: readonly ResourceTx[], deadline?: number): Promise<Lease> {
    return new Promise((resolve, reject) => {
      this.#checkout(what, suspended, deadline, (err, lease) => {
        if (err) reject(err);
        else resolve(lease as Lease);
      });
    });
  }

  /**
   * {@link acquire} on pg-pool's callback API (no promise of its own). `what` names the waiter
   * in a timeout message; a BeginRequest is turned into its label only when one is needed.
   */
  #checkout(
    what: string | BeginRequest,
    suspended: readonly ResourceTx[],
    deadline: number | undefined,
    done: (err: TxkitError | undefined, lease?: Lease) => void,
  ): void {
    if (this.#closed) {
      done(new ConnectionLostError('this postgres database has been closed'));
      return;
    }
    if (this.pool.idleCount > this.pool.waitingCount) {
      // An idle connection is free for us right now: no need to arm a timeout.
      this.pool.connect((err, client) => {
        if (err) done(classifyPgError(err, { phase: 'connect', nothingSent: true }));
        else done(undefined, new Lease(client as PgClient, this.events));
      });
      return;
    }
    const untilDeadline =
      deadline === undefined ? Number.POSITIVE_INFINITY : Math.max(0, deadline - performance.now());
    const waitMs = Math.min(this.options.acquireTimeoutMs, untilDeadline);
    let settled = false;
    const timer = setTimeout(() => {
      settled = true;
      const label = typeof what === 'string' ? what : txLabel(what);
      done(
        waitMs === untilDeadline
          ? new TransactionTimeoutError(
              `the transaction deadline passed while ${label} waited for a connection`,
            )
          : this.#poolTimeout(label, suspended, waitMs),
      );
    }, waitMs);
    this.pool.connect((err, client) => {
      if (settled) {
        // Too late: the waiter has given up. Hand the connection straight back.
        if (!err) (client as PgClient).release();
        return;
      }
      settled = true;
      clearTimeout(timer);
      if (err)
        done(err instanceof TxkitError ? err : classifyPgError(err, { phase: 'connect', nothingSent: true }));
      else done(undefined, new Lease(client as PgClient, this.events));
    });
  }

  #poolTimeout(what: string, suspended: readonly ResourceTx[], waitMs: number): PoolTimeoutError {
    const p = this.pool;
    const held = this.#suspendedHere(suspended).length;
    const max = p.options.max ?? 10;
    let msg =
      `${what} waited ${waitMs} ms for a connection and got none: ` +
      `pool max ${max}, ${p.totalCount} open, ${p.idleCount} idle, ${p.waitingCount} waiting.`;
    if (held > 0) {
      msg +=
        ` ${held} transaction(s) of this database are suspended in this call chain by propagation ` +
        `'requires_new' or 'not_supported', and each holds a connection while this work waits: with every ` +
        'connection held by suspended outer transactions, the pool cannot make progress. Raise max, ' +
        'or avoid requires_new under load.';
    }
    return new PoolTimeoutError(msg);
  }

  /**
   * Checks out a connection and sends BEGIN, all on callbacks: the common case (nothing to
   * `SET LOCAL`, server default level known) costs one promise. Settings and the one-time
   * `SHOW transaction_isolation` continue in {@link #completeBegin}.
   */
  begin(req: BeginRequest): Promise<ResourceTx> {
    let settings: LocalSettings | undefined;
    let suspendedHere: readonly PgTx[];
    try {
      const txOptions = resolveTxOptions(req.extra);
      if (req.deferrable && !(req.isolation === 'serializable' && req.readOnly)) {
        throw new InvalidOptionError(
          "deferrable only has an effect with isolation 'serializable' and readOnly: true",
        );
      }
      suspendedHere = req.suspended.length === 0 ? NO_TXS : this.#suspendedHere(req.suspended);
      if (
        suspendedHere.length > 0 &&
        txOptions.lockTimeoutMs === undefined &&
        this.options.suspendedLockTimeoutMs > 0
      ) {
        // An inner transaction waiting on a row lock of its own suspended outer transaction
        // would wait forever (the server sees no cycle): bound the wait.
        txOptions.lockTimeoutMs = this.options.suspendedLockTimeoutMs;
      }
      settings = localSettings(txOptions);
    } catch (err) {
      return Promise.reject(err);
    }
    const sql = beginSql(req.isolation, req.readOnly, req.deferrable);
    return new Promise<ResourceTx>((resolve, reject) => {
      this.#checkout(req, req.suspended, req.deadline, (err, lease) => {
        if (err) {
          reject(err);
          return;
        }
        const l = lease as Lease;
        (l.client as unknown as CallbackClient).query(sql, undefined, (beginErr) => {
          const needDefault = req.isolation === undefined && this.#serverDefaultIsolation === undefined;
          if (beginErr || settings !== undefined || needDefault) {
            this.#completeBegin(l, beginErr ?? undefined, settings, needDefault).then(
              () => resolve(this.#newTx(l, req, suspendedHere)),
              reject,
            );
            return;
          }
          resolve(this.#newTx(l, req, suspendedHere));
        });
      });
    });
  }

  /** After BEGIN: applies the settings and learns the server's default level, or cleans up a failure. */
  async #completeBegin(
    lease: Lease,
    beginErr: Error | undefined,
    settings: LocalSettings | undefined,
    needDefault: boolean,
  ): Promise<void> {
    try {
      // A failure is handled a microtask later, once pg has also seen the ReadyForQuery or socket error.
      if (beginErr) await Promise.reject(beginErr);
      if (settings !== undefined) await lease.client.query(settings.text, settings.values);
      if (needDefault) {
        const { rows } = await lease.client.query<{ transaction_isolation: string }>(
          'SHOW transaction_isolation',
        );
        const level = rows[0]?.transaction_isolation as IsolationLevel;
        this.#serverDefaultIsolation = level;
      }
    } catch (err) {
      const lost = lease.dead;
      // A failed BEGIN/SET: roll back whatever opened, and never hand the connection on in doubt.
      if (!lost) await lease.client.query('ROLLBACK').catch(() => {});
      lease.release(lost ? 'the connection failed during BEGIN' : undefined);
      throw classifyPgError(err, { phase: 'begin', connectionLost: lost, nothingSent: true });
    }
  }

  #newTx(lease: Lease, req: BeginRequest, suspendedHere: readonly PgTx[]): PgTx {
    let isolation = req.isolation ?? this.#serverDefaultIsolation ?? 'read committed';
    if (isolation === 'read uncommitted') isolation = 'read committed';
    if (suspendedHere.length === 0)
      return new PgTx(this, lease, req.txId, isolation, req.readOnly, false, NO_PIDS);
    const holders = suspendedHere.map((t) => t.processId).filter((pid): pid is number => pid !== undefined);
    return new PgTx(this, lease, req.txId, isolation, req.readOnly, true, holders);
  }

  query<T>(sql: string, params: Params | undefined, req: AutocommitRequest): Promise<T[]> {
    return this.#autocommit(sql, params, req, rowsOf as (r: PgResult) => T[]);
  }

  execute(sql: string, params: Params | undefined, req: AutocommitRequest): Promise<ExecuteResult> {
    return this.#autocommit(sql, params, req, affected);
  }

  /** One statement on its own connection; on callbacks (one promise) unless its lock wait must be bounded. */
  #autocommit<R>(
    sql: string,
    params: Params | undefined,
    req: AutocommitRequest,
    map: (r: PgResult) => R,
  ): Promise<R> {
    let values: unknown[] | undefined;
    try {
      this.#guard(sql);
      values = positional(params);
    } catch (err) {
      return Promise.reject(err);
    }
    // Under a suspended transaction of this database ('not_supported'), a lock held by that
    // transaction would be waited for forever: bound the wait for this one statement.
    if (
      req.suspended.length > 0 &&
      this.#suspendedHere(req.suspended).length > 0 &&
      this.options.suspendedLockTimeoutMs > 0
    ) {
      return this.#autocommitBounded(sql, values, req).then(map);
    }
    return new Promise<R>((resolve, reject) => {
      this.#checkout('an autocommit statement', req.suspended, undefined, (err, lease) => {
        if (err) {
          reject(err);
          return;
        }
        const l = lease as Lease;
        sendStatement(l.client, sql, values, this.options.statementNames?.nameFor(sql), (queryErr, r) => {
          if (queryErr) {
            // A microtask later, as pg's promise API would: by then a dying socket has marked
            // the lease dead, and a server error is followed by its ReadyForQuery.
            queueMicrotask(() => {
              const e = classifyPgError(queryErr, { phase: 'statement', connectionLost: l.dead });
              discardIfStale(l, e);
              l.release();
              reject(e);
            });
            return;
          }
          l.release();
          resolve(map(r as PgResult));
        });
      });
    });
  }

  async #autocommitBounded(
    sql: string,
    values: unknown[] | undefined,
    req: AutocommitRequest,
  ): Promise<pg.QueryResult> {
    const lease = await this.acquire('an autocommit statement', req.suspended);
    let doubt: string | undefined;
    try {
      await lease.client.query("SELECT set_config('lock_timeout', $1, false)", [
        String(this.options.suspendedLockTimeoutMs),
      ]);
      // (text, values) rather than a config object: pg clones config objects on every call
      return (await (values === undefined
        ? lease.client.query(sql)
        : lease.client.query(sql, values))) as pg.QueryResult;
    } catch (err) {
      throw classifyPgError(err, { phase: 'statement', connectionLost: lease.dead });
    } finally {
      if (!lease.dead) {
        await lease.client.query('RESET lock_timeout').catch(() => {
          doubt = 'could not reset its lock_timeout';
        });
      }
      lease.release(doubt);
    }
  }

  /** Fails with `PreparedTransactionsDisabledError` when `max_prepared_transactions` is 0. */
  async preflightPrepared(): Promise<number> {
    return preflightPrepared(this.pool);
  }

  async commitPrepared(gid: string): Promise<void> {
    await commitPrepared(this.pool, gid);
  }

  /** Idempotent: a GID that no longer exists counts as rolled back. */
  async rollbackPrepared(gid: string): Promise<void> {
    await rollbackPrepared(this.pool, gid);
  }

  async listPrepared(prefix?: string): Promise<PreparedInfo[]> {
    return listPrepared(this.pool, prefix === undefined ? {} : { prefix });
  }

  get closed(): boolean {
    return this.#closed;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.options.ownsPool) await this.pool.end();
  }
}

const NO_TXS: readonly PgTx[] = Object.freeze([]);
const NO_PIDS: readonly number[] = Object.freeze([]);

/** How a transaction is named in a pool-timeout message. */
function txLabel(req: BeginRequest): string {
  return `transaction ${req.txId}${req.name ? ` (${req.name})` : ''}`;
}

/** One statement setting the transaction's local options. */
interface LocalSettings {
  text: string;
  values: string[];
}

/** `SET LOCAL` equivalents with bound values (SET itself takes no parameters); undefined when there is nothing to set. */
function localSettings(o: PostgresTransactionOptions): LocalSettings | undefined {
  if (
    o.statementTimeoutMs === undefined &&
    o.lockTimeoutMs === undefined &&
    o.idleInTransactionTimeoutMs === undefined &&
    o.durability !== 'relaxed'
  ) {
    return undefined;
  }
  const names: string[] = [];
  const values: string[] = [];
  const add = (name: string, value: string | undefined): void => {
    if (value === undefined) return;
    names.push(name);
    values.push(value);
  };
  add('statement_timeout', o.statementTimeoutMs?.toString());
  add('lock_timeout', o.lockTimeoutMs?.toString());
  add('idle_in_transaction_session_timeout', o.idleInTransactionTimeoutMs?.toString());
  if (o.durability === 'relaxed') add('synchronous_commit', 'off');
  const calls = names.map((n, i) => `set_config('${n}', $${i + 1}, true)`).join(', ');
  return { text: `SELECT ${calls}`, values };
}
