/**
 * MySQL / MariaDB as a txkit resource, on a mysql2 pool.
 *
 * - Begin: `SET TRANSACTION ISOLATION LEVEL …` (next transaction only, so nothing leaks to
 *   the pool), then `START TRANSACTION [READ ONLY] [, WITH CONSISTENT SNAPSHOT]` or `XA START`.
 * - Errors are classified by errno, flavour and phase. An error that ended the server
 *   transaction (deadlock, lost connection, 1205 with `innodb_rollback_on_timeout`, an
 *   implicit commit) makes the transaction refuse every later statement without sending
 *   it: after a deadlock the connection is in autocommit, so a later write would commit
 *   on its own (F2).
 * - Pool hygiene: a connection goes back to the pool only after COMMIT or ROLLBACK
 *   succeeded and any session setting was restored; in any doubt it is destroyed.
 * - Deadlines and signals: `cancel()` sends `KILL QUERY <thread>` from a side connection.
 */
import mysql2 from 'mysql2/promise';
import {
  InvalidArgumentError,
  InvalidOptionError,
  PoolTimeoutError,
  TxkitError,
  UnsupportedFeatureError,
} from '../../core/errors.js';
import { EventHub } from '../../core/events.js';
import type {
  AutocommitRequest,
  BeginRequest,
  Capabilities,
  ExecuteResult,
  Params,
  PreparedInfo,
  Resource,
  ResourceTx,
} from '../../core/resource.js';
import { assertNoTransactionControl } from '../shared/statement-guard.js';
import { LEVEL_SQL, levelFromServer, mysqlCapabilities } from './capabilities.js';
import { classificationOf, type MysqlFlavor, toTxkitError } from './errors.js';
import { MysqlTx, type ServerFacts } from './mysql-tx.js';
import { checkLockWaitTimeout, type ResolvedMysqlOptions } from './options.js';
import { parseServerVersion } from './server-info.js';
import { type Conn, checkParams, toExecuteResult } from './statement.js';
import { normalizeXid, xaCommit, xaRecover, xaRollback, xidSql } from './xa.js';

export interface MysqlResourceEvents {
  /** A connection was destroyed instead of going back to the pool, and why. */
  destroy: { threadId: number; reason: string };
  error: { source: string; error: unknown };
}

/** Who waits for a connection, for the pool timeout message (built only when needed). */
function beginLabel(req: BeginRequest): string {
  return `transaction ${req.txId}${req.name ? ` (${req.name})` : ''}`;
}

export class MysqlResource implements Resource {
  readonly kind = 'mysql';
  readonly events = new EventHub<MysqlResourceEvents>('txkit:mysql:');
  #capabilities: Capabilities = mysqlCapabilities(false);
  #server: Promise<ServerFacts> | undefined;
  #facts: ServerFacts | undefined;
  #control: Promise<mysql2.Connection> | undefined;
  #closed = false;

  constructor(readonly options: ResolvedMysqlOptions) {}

  get pool(): mysql2.Pool {
    return this.options.pool;
  }

  /** Capabilities; refined after the first connection (MariaDB `innodb_snapshot_isolation`). */
  get capabilities(): Capabilities {
    return this.#capabilities;
  }

  get flavor(): MysqlFlavor | undefined {
    return this.#facts?.info.flavor;
  }

  classify(err: unknown): TxkitError {
    return toTxkitError(err, { flavor: this.#facts?.info.flavor });
  }

  /** Flavour, version and the server settings the adapter depends on (read once). */
  facts(): Promise<ServerFacts> {
    this.#server ??= this.#readFacts().catch((err) => {
      this.#server = undefined;
      throw err;
    });
    return this.#server;
  }

  async #readFacts(): Promise<ServerFacts> {
    try {
      const [[r]] = (await this.pool.query(
        'SELECT VERSION() AS v, @@version_comment AS c, @@innodb_rollback_on_timeout AS rbt, @@global.innodb_lock_wait_timeout AS lwt',
      )) as unknown as [[Record<string, unknown>]];
      const info = parseServerVersion(String(r.v), String(r.c ?? ''));
      const isoVar = info.flavor === 'mariadb' ? '@@global.tx_isolation' : '@@global.transaction_isolation';
      const [[iso]] = (await this.pool.query(`SELECT ${isoVar} AS iso`)) as unknown as [[{ iso: string }]];
      let snapshotIsolation = false;
      if (info.flavor === 'mariadb') {
        const [vars] = (await this.pool.query(
          "SHOW GLOBAL VARIABLES LIKE 'innodb_snapshot_isolation'",
        )) as unknown as [Array<{ Value: string }>];
        snapshotIsolation = /^(ON|1)$/i.test(vars[0]?.Value ?? '');
      }
      const facts: ServerFacts = {
        info,
        rollbackOnTimeout: Number(r.rbt) === 1,
        defaultIsolation: levelFromServer(iso.iso),
        globalLockWaitTimeoutSec: Number(r.lwt),
        snapshotIsolation,
      };
      this.#facts = facts;
      this.#capabilities = mysqlCapabilities(snapshotIsolation);
      return facts;
    } catch (err) {
      throw toTxkitError(err, { phase: 'connect' });
    }
  }

  /** A pooled connection within `acquireTimeoutMs`, or `PoolTimeoutError`. */
  acquire(label: string): Promise<Conn> {
    return new Promise((resolve, reject) => {
      this.#take(label, (err, conn) => {
        if (err) reject(err);
        else resolve(conn as Conn);
      });
    });
  }

  /**
   * Borrows a pooled connection on mysql2's callback API and hands it to `done`, or a
   * classified error (`PoolTimeoutError` after `acquireTimeoutMs`). `label` says who waited
   * in the timeout message; a BeginRequest is only formatted when that message is needed.
   */
  #take(label: string | BeginRequest, done: (err: TxkitError | null, conn?: Conn) => void): void {
    const core = this.pool.pool;
    try {
      if (this.#hasIdleConnection()) {
        // A free connection is handed over at once: no timer needed.
        core.getConnection((err, conn) => {
          if (err) done(toTxkitError(err, { flavor: this.#facts?.info.flavor, phase: 'connect' }));
          else done(null, conn);
        });
        return;
      }
      let waiting = true;
      const timer = setTimeout(() => {
        waiting = false;
        const who = typeof label === 'string' ? label : beginLabel(label);
        done(
          new PoolTimeoutError(
            `no MySQL connection within ${this.options.acquireTimeoutMs} ms for ${who}: all pooled connections are busy ` +
              '(raise connectionLimit or acquireTimeoutMs, or shorten transactions)',
          ),
        );
      }, this.options.acquireTimeoutMs);
      core.getConnection((err, conn) => {
        if (!waiting) {
          // Gave up already: a connection arriving late goes straight back.
          if (!err) conn.release();
          return;
        }
        waiting = false;
        clearTimeout(timer);
        if (err) done(toTxkitError(err, { flavor: this.#facts?.info.flavor, phase: 'connect' }));
        else done(null, conn);
      });
    } catch (err) {
      done(toTxkitError(err, { flavor: this.#facts?.info.flavor, phase: 'connect' }));
    }
  }

  #hasIdleConnection(): boolean {
    // mysql2 keeps idle connections in `pool.pool._freeConnections` (a Denque); not public API,
    // so anything unexpected falls back to the timed path.
    const free = (this.pool.pool as unknown as { _freeConnections?: { length?: unknown } } | undefined)
      ?._freeConnections?.length;
    return typeof free === 'number' && free > 0;
  }

  /** Destroys a connection whose state is in doubt instead of returning it. */
  discard(conn: Conn, reason: string): void {
    const threadId = conn.threadId;
    try {
      conn.destroy();
    } catch {
      // already gone
    }
    if (this.events.wants('destroy')) this.events.emit('destroy', { threadId, reason });
  }

  guard(sql: string): void {
    if (typeof sql !== 'string') throw new InvalidArgumentError('sql must be a string');
    if (!this.options.allowRawTransactionControl) assertNoTransactionControl(sql);
  }

  /**
   * Borrows a connection and begins. The common case (no options) costs one promise and one
   * round trip (`START TRANSACTION`). With options, the statements the server needs before it
   * (`SET SESSION innodb_lock_wait_timeout`, `SET TRANSACTION …`) are queued on the connection
   * together (`multipleStatements` stays off, so each is its own round trip, but nothing
   * waits in between); if any of them fails the connection is destroyed, which also ends
   * whatever the later ones began.
   */
  begin(req: BeginRequest): Promise<ResourceTx> {
    const facts = this.#facts;
    if (facts === undefined) return this.facts().then(() => this.begin(req));
    const flavor = facts.info.flavor;
    const extra = req.extra;
    let statements: string[] | undefined;
    let lwt: number | undefined;
    let xa: string | undefined;
    try {
      lwt = checkLockWaitTimeout(extra.lockWaitTimeoutSec, flavor);
      const snapshot = extra.consistentSnapshot;
      if (snapshot !== undefined && typeof snapshot !== 'boolean') {
        throw new InvalidOptionError('consistentSnapshot must be a boolean');
      }
      if (extra.xa !== undefined) {
        normalizeXid(extra.xa as string);
        if (typeof extra.xa !== 'string') throw new InvalidOptionError('xa must be a gtrid string');
        if (req.readOnly) throw new UnsupportedFeatureError('an XA transaction cannot be READ ONLY');
        xa = extra.xa;
      }
      if (
        this.options.cleanOnAcquire ||
        lwt !== undefined ||
        req.isolation !== undefined ||
        xa !== undefined ||
        req.readOnly ||
        snapshot
      ) {
        statements = [];
        if (this.options.cleanOnAcquire) statements.push('ROLLBACK');
        if (lwt !== undefined) statements.push(`SET SESSION innodb_lock_wait_timeout = ${lwt}`);
        if (req.isolation !== undefined)
          statements.push(`SET TRANSACTION ISOLATION LEVEL ${LEVEL_SQL[req.isolation]}`);
        if (xa !== undefined) statements.push(`XA START ${xidSql(xa)}`);
        else {
          const modes: string[] = [];
          if (req.readOnly) modes.push('READ ONLY');
          if (snapshot) modes.push('WITH CONSISTENT SNAPSHOT');
          statements.push(`START TRANSACTION${modes.length ? ` ${modes.join(', ')}` : ''}`);
        }
      }
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise((resolve, reject) => {
      this.#take(req, (err, conn) => {
        if (err) {
          reject(err);
          return;
        }
        const c = conn as Conn;
        const tx = new MysqlTx(
          this,
          c,
          req.txId,
          req.isolation ?? facts.defaultIsolation,
          req.readOnly,
          facts,
        );
        if (lwt !== undefined) {
          tx.sessionChanged = true;
          tx.lockWaitTimeoutSec = lwt;
        }
        if (xa !== undefined) tx.xid = xa;
        try {
          if (statements === undefined) {
            c.query('START TRANSACTION', (raw: unknown) => {
              if (raw) this.#beginFailed(c, raw, reject);
              else resolve(tx);
            });
            return;
          }
          let pending = statements.length;
          let first: unknown;
          for (const sql of statements) {
            c.query(sql, (raw: unknown) => {
              if (raw && first === undefined) first = raw;
              if (--pending > 0) return;
              if (first !== undefined) this.#beginFailed(c, first, reject);
              else resolve(tx);
            });
          }
        } catch (raw) {
          this.#beginFailed(c, raw, reject);
        }
      });
    });
  }

  #beginFailed(conn: Conn, raw: unknown, reject: (err: unknown) => void): void {
    this.discard(conn, 'begin failed');
    reject(toTxkitError(raw, { flavor: this.#facts?.info.flavor, phase: 'connect' }));
  }

  query<T>(sql: string, params: Params | undefined, _req: AutocommitRequest): Promise<T[]> {
    return this.#autocommit(sql, params, false) as Promise<T[]>;
  }

  execute(sql: string, params: Params | undefined, _req: AutocommitRequest): Promise<ExecuteResult> {
    return this.#autocommit(sql, params, true) as Promise<ExecuteResult>;
  }

  /**
   * One statement in autocommit on a pooled connection, borrowed with the acquire timeout
   * (a pool held by suspended transactions fails instead of hanging).
   */
  #autocommit(sql: string, params: Params | undefined, asExecute: boolean): Promise<unknown> {
    let values: unknown[] | undefined;
    try {
      this.guard(sql);
      values = checkParams(params);
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise((resolve, reject) => {
      this.#take('an autocommit statement', (err, conn) => {
        if (err) {
          reject(err);
          return;
        }
        const c = conn as Conn;
        try {
          c.query(sql, values, (raw: unknown, result: unknown) => {
            if (raw) this.#autocommitFailed(c, raw, reject);
            else {
              c.release();
              resolve(asExecute ? toExecuteResult(result) : Array.isArray(result) ? result : []);
            }
          });
        } catch (raw) {
          this.#autocommitFailed(c, raw, reject);
        }
      });
    });
  }

  #autocommitFailed(conn: Conn, raw: unknown, reject: (err: unknown) => void): void {
    const e = toTxkitError(raw, { flavor: this.#facts?.info.flavor, phase: 'autocommit' });
    if (classificationOf(e)?.scope === 'connection') this.discard(conn, 'connection failed in autocommit');
    else conn.release();
    reject(e);
  }

  /** A side connection to the same server, outside the pool (which may be exhausted). */
  async #side<T>(fn: (c: mysql2.Connection) => Promise<T>): Promise<T> {
    this.#control ??= mysql2.createConnection(this.options.connectionConfig).then((c) => {
      c.on('error', () => {
        this.#control = undefined;
      });
      return c;
    });
    try {
      return await fn(await this.#control);
    } catch (err) {
      this.#control = undefined;
      throw err;
    }
  }

  /** Runs `KILL QUERY <threadId>` on the side connection. */
  async killQuery(threadId: number): Promise<void> {
    if (!Number.isInteger(threadId) || threadId < 0)
      throw new InvalidArgumentError(`bad thread id ${threadId}`);
    try {
      await this.#side((c) => c.query(`KILL QUERY ${threadId}`));
    } catch (err) {
      // 1094: the thread is gone already — nothing left to cancel.
      if (classificationOf(toTxkitError(err))?.errno === 1094) return;
      throw toTxkitError(err, { flavor: this.#facts?.info.flavor });
    }
  }

  /** Waits (bounded) until the server has closed session `threadId`, e.g. to detach a prepared XA branch. */
  async waitForSessionGone(threadId: number, timeoutMs = 10_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const [rs] = (await this.#side((c) =>
        c.query('SELECT 1 FROM information_schema.PROCESSLIST WHERE ID = ?', [threadId]),
      )) as unknown as [unknown[]];
      if (rs.length === 0) return;
      if (Date.now() >= end) {
        throw new TxkitError('E_TIMEOUT', `session ${threadId} was still open after ${timeoutMs} ms`);
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  commitPrepared(gid: string): Promise<void> {
    return xaCommit(this.pool, gid, { flavor: this.#facts?.info.flavor });
  }

  async rollbackPrepared(gid: string): Promise<void> {
    await xaRollback(this.pool, gid, { flavor: this.#facts?.info.flavor });
  }

  async listPrepared(prefix?: string): Promise<PreparedInfo[]> {
    const xids = await xaRecover(this.pool, { ...(prefix !== undefined ? { prefix } : {}) });
    return xids.filter((x) => x.bqual === '' && x.formatId === 1).map((x) => ({ gid: x.gtrid }));
  }

  get closed(): boolean {
    return this.#closed;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const control = this.#control;
    this.#control = undefined;
    if (control) await control.then((c) => c.end()).catch(() => {});
    if (this.options.ownsPool) await this.pool.end();
  }
}

export { mysqlCapabilities } from './capabilities.js';
export { MysqlTx, type ServerFacts } from './mysql-tx.js';
export { implicitCommitKeyword } from './statement.js';
