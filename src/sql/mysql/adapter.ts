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
  PoolTimeoutError,
  ReadOnlyTransactionError,
  TransactionAbortedError,
  TxkitError,
  UnsupportedFeatureError,
} from '../../core/errors.js';
import { EventHub } from '../../core/events.js';
import type {
  Anomaly,
  AutocommitRequest,
  BeginRequest,
  Capabilities,
  ExecuteResult,
  IsolationCapability,
  IsolationLevel,
  Params,
  PreparedInfo,
  Resource,
  ResourceTx,
} from '../../core/resource.js';
import { assertNoTransactionControl } from '../shared/statement-guard.js';
import { classificationOf, type MysqlFlavor, TransactionStateError, toTxkitError } from './errors.js';
import { quoteName } from './names.js';
import { checkLockWaitTimeout, type ResolvedMysqlOptions } from './options.js';
import { parseServerVersion, type ServerInfo } from './server-info.js';
import { normalizeXid, xaCommit, xaRecover, xaRollback, xidSql } from './xa.js';

export interface MysqlResourceEvents {
  /** A connection was destroyed instead of going back to the pool, and why. */
  destroy: { threadId: number; reason: string };
  error: { source: string; error: unknown };
}

const ALL: readonly Anomaly[] = [
  'dirty_read',
  'non_repeatable_read',
  'phantom_read',
  'lost_update',
  'read_skew',
  'write_skew',
];

/**
 * What InnoDB really prevents per level. Repeatable read reads from a snapshot but lets
 * read-modify-write lose updates and allows write skew, unless MariaDB's
 * `innodb_snapshot_isolation` is on (then a stale write fails with 1020 instead).
 * Serializable turns plain reads into shared-lock reads: conflicts block or deadlock.
 */
export function mysqlCapabilities(snapshotIsolation: boolean): Capabilities {
  const cap = (effective: IsolationLevel, prevents: readonly Anomaly[]): IsolationCapability =>
    Object.freeze({ effective, prevents: Object.freeze([...prevents]) });
  const rr: Anomaly[] = ['dirty_read', 'non_repeatable_read', 'phantom_read', 'read_skew'];
  if (snapshotIsolation) rr.push('lost_update');
  return Object.freeze({
    isolation: Object.freeze({
      'read uncommitted': cap('read uncommitted', []),
      'read committed': cap('read committed', ['dirty_read']),
      'repeatable read': cap('repeatable read', rr),
      serializable: cap('serializable', ALL),
    }),
    defaultIsolation: 'repeatable read',
    savepoints: true,
    readOnly: true,
    deferrable: false,
    twoPhase: true,
    concurrentTransactions: true,
    statementErrorAbortsTransaction: false,
  });
}

const LEVEL_SQL: Record<IsolationLevel, string> = {
  'read uncommitted': 'READ UNCOMMITTED',
  'read committed': 'READ COMMITTED',
  'repeatable read': 'REPEATABLE READ',
  serializable: 'SERIALIZABLE',
};

function levelFromServer(v: unknown): IsolationLevel {
  const s = String(v ?? '')
    .toLowerCase()
    .replace(/[-_]/g, ' ');
  return (Object.keys(LEVEL_SQL) as IsolationLevel[]).find((l) => l === s) ?? 'repeatable read';
}

/** Statements that implicitly commit the open transaction (F10); refused inside one. */
const IMPLICIT_COMMIT =
  /^\s*(?:\/\*[\s\S]*?\*\/\s*|--[^\n]*\n\s*|#[^\n]*\n\s*)*\(?\s*(ALTER|CREATE|DROP|RENAME|TRUNCATE|LOCK|UNLOCK|GRANT|REVOKE|ANALYZE|OPTIMIZE|REPAIR|FLUSH|INSTALL|UNINSTALL|LOAD\s+INDEX|CACHE\s+INDEX)\b(\s+TEMPORARY\b)?/i;

export function implicitCommitKeyword(sql: string): string | undefined {
  const m = IMPLICIT_COMMIT.exec(sql);
  if (!m || m[2]) return undefined; // CREATE/DROP TEMPORARY TABLE do not commit
  return (m[1] as string).toUpperCase().replace(/\s+/g, ' ');
}

const SERVER_STATUS_IN_TRANS = 0x01;

type Conn = mysql2.PoolConnection;

function checkParams(params: Params | undefined): unknown[] | undefined {
  if (params === undefined) return undefined;
  if (!Array.isArray(params)) {
    throw new InvalidArgumentError(
      'MySQL statements take positional ? parameters: pass an array, not an object',
    );
  }
  return params as unknown[];
}

function toExecuteResult(result: unknown): ExecuteResult {
  if (Array.isArray(result)) return { rowsAffected: result.length };
  const h = result as mysql2.ResultSetHeader;
  const out: ExecuteResult = { rowsAffected: Number(h.affectedRows ?? 0) };
  if (h.insertId) out.lastInsertId = h.insertId;
  return out;
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
  async acquire(label: string): Promise<Conn> {
    if (this.#hasIdleConnection()) {
      // A free connection is handed over at once: no timer needed.
      try {
        return await this.pool.getConnection();
      } catch (err) {
        throw toTxkitError(err, { flavor: this.#facts?.info.flavor, phase: 'connect' });
      }
    }
    const pending = this.pool.getConnection();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(
          new PoolTimeoutError(
            `no MySQL connection within ${this.options.acquireTimeoutMs} ms for ${label}: all pooled connections are busy ` +
              '(raise connectionLimit or acquireTimeoutMs, or shorten transactions)',
          ),
        );
      }, this.options.acquireTimeoutMs);
    });
    try {
      return await Promise.race([pending, timeout]);
    } catch (err) {
      // The connection may still arrive later: hand it straight back.
      pending.then(
        (c) => c.release(),
        () => {},
      );
      if (err instanceof TxkitError) throw err;
      throw toTxkitError(err, { flavor: this.#facts?.info.flavor, phase: 'connect' });
    } finally {
      clearTimeout(timer);
    }
  }

  #hasIdleConnection(): boolean {
    // mysql2 keeps idle connections in `pool.pool._freeConnections` (a Denque); not public API,
    // so anything unexpected falls back to the timed path.
    const free = (this.pool as unknown as { pool?: { _freeConnections?: { length?: unknown } } }).pool
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

  async begin(req: BeginRequest): Promise<ResourceTx> {
    const facts = this.#facts ?? (await this.facts());
    const flavor = facts.info.flavor;
    const lwt = checkLockWaitTimeout(req.extra.lockWaitTimeoutSec, flavor);
    const snapshot = req.extra.consistentSnapshot;
    if (snapshot !== undefined && typeof snapshot !== 'boolean') {
      throw new TxkitError('E_INVALID_OPTION', 'consistentSnapshot must be a boolean');
    }
    const xa = req.extra.xa;
    if (xa !== undefined) {
      normalizeXid(xa as string);
      if (typeof xa !== 'string') throw new TxkitError('E_INVALID_OPTION', 'xa must be a gtrid string');
      if (req.readOnly) throw new UnsupportedFeatureError('an XA transaction cannot be READ ONLY');
    }
    const label = `transaction ${req.txId}${req.name ? ` (${req.name})` : ''}`;
    const conn = await this.acquire(label);
    const tx = new MysqlTx(
      this,
      conn,
      req.txId,
      req.isolation ?? facts.defaultIsolation,
      req.readOnly,
      facts,
    );
    try {
      if (this.options.cleanOnAcquire) await conn.query('ROLLBACK');
      if (lwt !== undefined) {
        await conn.query(`SET SESSION innodb_lock_wait_timeout = ${lwt}`);
        tx.sessionChanged = true;
        tx.lockWaitTimeoutSec = lwt;
      }
      if (req.isolation !== undefined)
        await conn.query(`SET TRANSACTION ISOLATION LEVEL ${LEVEL_SQL[req.isolation]}`);
      if (xa !== undefined) {
        await conn.query(`XA START ${xidSql(xa as string)}`);
        tx.xid = xa as string;
      } else {
        const modes: string[] = [];
        if (req.readOnly) modes.push('READ ONLY');
        if (snapshot) modes.push('WITH CONSISTENT SNAPSHOT');
        await conn.query(`START TRANSACTION${modes.length ? ` ${modes.join(', ')}` : ''}`);
      }
    } catch (err) {
      this.discard(conn, 'begin failed');
      throw toTxkitError(err, { flavor, phase: 'connect' });
    }
    return tx;
  }

  async query<T>(sql: string, params: Params | undefined, _req: AutocommitRequest): Promise<T[]> {
    const result = await this.#autocommit(sql, params);
    return (Array.isArray(result) ? result : []) as T[];
  }

  async execute(sql: string, params: Params | undefined, _req: AutocommitRequest): Promise<ExecuteResult> {
    return toExecuteResult(await this.#autocommit(sql, params));
  }

  /**
   * One statement in autocommit on a pooled connection, borrowed with the acquire timeout
   * (a pool held by suspended transactions fails instead of hanging).
   */
  async #autocommit(sql: string, params: Params | undefined): Promise<unknown> {
    this.guard(sql);
    const values = checkParams(params);
    const conn = await this.acquire('an autocommit statement');
    try {
      const [result] = await conn.query(sql, values);
      conn.release();
      return result;
    } catch (err) {
      const e = toTxkitError(err, { flavor: this.#facts?.info.flavor, phase: 'autocommit' });
      if (classificationOf(e)?.scope === 'connection') this.discard(conn, 'connection failed in autocommit');
      else conn.release();
      throw e;
    }
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

export interface ServerFacts {
  info: ServerInfo;
  rollbackOnTimeout: boolean;
  defaultIsolation: IsolationLevel;
  globalLockWaitTimeoutSec: number;
  snapshotIsolation: boolean;
}

/** One MySQL transaction on one pooled connection. */
export class MysqlTx implements ResourceTx {
  /** Set when an error ended the server transaction: every later statement is refused. */
  #abortCause: TxkitError | undefined;
  #done = false;
  #busy = false;
  sessionChanged = false;
  lockWaitTimeoutSec: number | undefined;
  xid: string | undefined;

  constructor(
    readonly resource: MysqlResource,
    readonly conn: Conn,
    readonly txId: string,
    readonly isolation: IsolationLevel,
    readonly readOnly: boolean,
    readonly facts: ServerFacts,
  ) {}

  /** The server connection id (`CONNECTION_ID()`), e.g. for `INNODB_TRX.trx_mysql_thread_id`. */
  get threadId(): number {
    return this.conn.threadId;
  }

  get aborted(): boolean {
    return this.#abortCause !== undefined;
  }

  #refuse(): TxkitError | undefined {
    if (this.#done) return new TxkitError('E_TX_CLOSED', `transaction ${this.txId} has ended`);
    if (this.#abortCause) {
      return new TransactionAbortedError(
        `transaction ${this.txId} was ended by the server (${this.#abortCause.code}); nothing more is sent on it`,
        { cause: this.#abortCause, txId: this.txId },
      );
    }
    return undefined;
  }

  /** Runs one statement; classifies errors and notices when the server ended the transaction. */
  async run(sql: string, values: unknown[] | undefined, opts: { nowait?: boolean } = {}): Promise<unknown> {
    const refused = this.#refuse();
    if (refused) throw refused;
    this.#busy = true;
    try {
      const [result] = await this.conn.query(sql, values);
      if (!Array.isArray(result)) this.#checkStillInTransaction(result as mysql2.ResultSetHeader);
      return result;
    } catch (raw) {
      const err = toTxkitError(raw, {
        flavor: this.facts.info.flavor,
        phase: 'statement',
        rollbackOnTimeout: this.facts.rollbackOnTimeout,
        ...(opts.nowait ? { nowait: true } : {}),
      });
      const c = classificationOf(err);
      if (c && (c.scope === 'transaction' || c.scope === 'connection')) this.#abortCause ??= err;
      else if (c && c.errno !== undefined) await this.#confirmStillInTransaction(err);
      throw err;
    } finally {
      this.#busy = false;
    }
  }

  #checkStillInTransaction(h: mysql2.ResultSetHeader): void {
    if (typeof h.serverStatus === 'number' && (h.serverStatus & SERVER_STATUS_IN_TRANS) === 0 && !this.xid) {
      this.#abortCause ??= new TransactionStateError(
        `the server is no longer in transaction ${this.txId} (a statement committed or rolled it back implicitly)`,
      );
    }
  }

  /** After a statement-level error: did the server keep the transaction? (`DO 0` reads the status flag.) */
  async #confirmStillInTransaction(err: TxkitError): Promise<void> {
    try {
      const [h] = await this.conn.query('DO 0');
      const status = (h as mysql2.ResultSetHeader).serverStatus;
      if (typeof status === 'number' && (status & SERVER_STATUS_IN_TRANS) === 0 && !this.xid)
        this.#abortCause ??= err;
    } catch (probeErr) {
      this.#abortCause ??= toTxkitError(probeErr, { flavor: this.facts.info.flavor, phase: 'statement' });
    }
  }

  #sql(sql: string): void {
    this.resource.guard(sql);
    const kw = implicitCommitKeyword(sql);
    if (kw !== undefined) {
      throw new TransactionStateError(
        `${kw} would implicitly commit transaction ${this.txId}; run schema and lock statements outside transactions`,
      );
    }
  }

  async query<T>(sql: string, params?: Params): Promise<T[]> {
    this.#sql(sql);
    const result = await this.run(sql, checkParams(params));
    return (Array.isArray(result) ? result : []) as T[];
  }

  async execute(sql: string, params?: Params): Promise<ExecuteResult> {
    this.#sql(sql);
    if (this.readOnly && /^\s*(INSERT|UPDATE|DELETE|REPLACE)\b/i.test(sql)) {
      // The server would say 1792 too; saying it first costs nothing.
      throw new ReadOnlyTransactionError(`transaction ${this.txId} is READ ONLY`);
    }
    return toExecuteResult(await this.run(sql, checkParams(params)));
  }

  async #control(sql: string): Promise<void> {
    await this.run(sql, undefined);
  }

  savepoint(name: string): Promise<void> {
    return this.#control(`SAVEPOINT ${quoteName(name, 'savepoint name')}`);
  }

  rollbackTo(name: string): Promise<void> {
    return this.#control(`ROLLBACK TO SAVEPOINT ${quoteName(name, 'savepoint name')}`);
  }

  release(name: string): Promise<void> {
    return this.#control(`RELEASE SAVEPOINT ${quoteName(name, 'savepoint name')}`);
  }

  usableAfterError(err: TxkitError): boolean {
    if (this.#abortCause) return false;
    const c = classificationOf(err);
    if (!c) return true; // not a server error: txkit refused before sending anything
    return c.scope === 'statement' || c.scope === 'none';
  }

  async cancel(): Promise<void> {
    if (this.#done || !this.#busy) return;
    await this.resource.killQuery(this.conn.threadId);
  }

  async commit(): Promise<void> {
    const refused = this.#refuse();
    if (refused) {
      await this.rollback();
      throw refused;
    }
    try {
      if (this.xid) await this.conn.query(`XA END ${xidSql(this.xid)}`);
      await this.conn.query(this.xid ? `XA COMMIT ${xidSql(this.xid)} ONE PHASE` : 'COMMIT');
    } catch (raw) {
      const err = toTxkitError(raw, { flavor: this.facts.info.flavor, phase: 'commit' });
      const c = classificationOf(err);
      if (c?.commitOutcomeUnknown || c?.scope === 'connection') {
        this.#done = true;
        this.resource.discard(this.conn, 'connection failed during COMMIT');
        throw err;
      }
      // The server refused the COMMIT: make sure nothing stays open, then report it.
      this.#abortCause ??= err;
      await this.rollback();
      throw err;
    }
    await this.#finish();
  }

  async rollback(): Promise<void> {
    if (this.#done) return;
    try {
      if (this.xid) {
        await this.conn.query(`XA END ${xidSql(this.xid)}`).catch(() => {});
        await this.conn.query(`XA ROLLBACK ${xidSql(this.xid)}`);
      } else {
        await this.conn.query('ROLLBACK');
      }
    } catch {
      this.#done = true;
      // A failed ROLLBACK leaves the state in doubt; closing the session rolls it back.
      this.resource.discard(this.conn, 'ROLLBACK failed');
      return;
    }
    await this.#finish();
  }

  /** Restores session settings and returns the connection, or destroys it when that fails. */
  async #finish(): Promise<void> {
    this.#done = true;
    try {
      if (this.sessionChanged) await this.conn.query('SET SESSION innodb_lock_wait_timeout = DEFAULT');
      this.conn.release();
    } catch {
      this.resource.discard(this.conn, 'could not restore session settings');
    }
  }

  /**
   * Two-phase: `XA END` + `XA PREPARE` under the gtrid this transaction began with, then
   * closes the connection so the prepared branch is detached and any connection (or a
   * recovery after a restart) can commit or roll it back.
   */
  async prepare(gid: string): Promise<void> {
    if (this.xid === undefined) {
      throw new UnsupportedFeatureError(
        'MySQL can only prepare a transaction begun as an XA branch: begin it with { xa: gid }',
      );
    }
    if (gid !== this.xid) {
      throw new InvalidArgumentError(
        `this XA transaction began as ${JSON.stringify(this.xid)}, not ${JSON.stringify(gid)}`,
      );
    }
    const refused = this.#refuse();
    if (refused) {
      await this.rollback();
      throw refused;
    }
    try {
      await this.conn.query(`XA END ${xidSql(gid)}`);
      await this.conn.query(`XA PREPARE ${xidSql(gid)}`);
    } catch (raw) {
      const err = toTxkitError(raw, { flavor: this.facts.info.flavor, phase: 'statement' });
      await this.rollback();
      throw err;
    }
    this.#done = true;
    const threadId = this.conn.threadId;
    this.resource.discard(this.conn, 'XA branch prepared: detaching it');
    // MariaDB keeps the branch attached to its session until the server has closed it;
    // only then can another connection (or recovery) decide it.
    await this.resource.waitForSessionGone(threadId);
  }
}
