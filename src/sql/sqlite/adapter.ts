/**
 * SQLite as a txkit resource. One writer connection behind an async FIFO mutex serves
 * every read-write transaction and autocommit write of this handle, so other async code
 * never slips into an open transaction. Optional read-only connections (WAL) serve
 * read-only transactions and autocommit reads. Extra connections are opened only for
 * work that runs while a transaction of this handle is suspended (`requires_new`).
 */
import {
  attachRollbackError,
  CommitOutcomeUnknownError,
  InvalidOptionError,
  SelfDeadlockError,
  TransactionClosedError,
  type TxkitError,
  UnsupportedFeatureError,
} from '../../core/errors.js';
import { FifoMutex } from '../../core/mutex.js';
import {
  ANOMALIES,
  type AutocommitRequest,
  type BeginRequest,
  type Capabilities,
  type ExecuteResult,
  type IsolationLevel,
  type Params,
  type Resource,
  type ResourceTx,
} from '../../core/resource.js';
import { assertNoTransactionControl } from '../shared/statement-guard.js';
import { SqliteConnection } from './connection.js';
import { classifySqliteError, isBusy } from './errors.js';
import { BEGIN_MODES, type BeginMode, type ResolvedSqliteOptions } from './options.js';

const SERIALIZABLE = { effective: 'serializable', prevents: ANOMALIES } as const;

/** SQLite transactions between connections are always serializable. */
export const SQLITE_CAPABILITIES: Capabilities = Object.freeze({
  isolation: Object.freeze({
    'read uncommitted': SERIALIZABLE,
    'read committed': SERIALIZABLE,
    'repeatable read': SERIALIZABLE,
    serializable: SERIALIZABLE,
  }),
  defaultIsolation: 'serializable',
  savepoints: true,
  readOnly: true,
  deferrable: false,
  twoPhase: false,
  concurrentTransactions: false,
  statementErrorAbortsTransaction: false,
});

const BEGIN_SQL: Record<BeginMode, string> = {
  deferred: 'BEGIN DEFERRED',
  immediate: 'BEGIN IMMEDIATE',
  exclusive: 'BEGIN EXCLUSIVE',
};

type Statement = ReturnType<SqliteConnection['prepare']>;

/** Runs a statement: rows for queries, changes for the rest. */
function runQuery<T>(stmt: Statement, params: Params | undefined): T[] {
  if (stmt.reader) return (params === undefined ? stmt.all() : stmt.all(params as never)) as T[];
  if (params === undefined) stmt.run();
  else stmt.run(params as never);
  return [];
}

function runExecute(stmt: Statement, params: Params | undefined): ExecuteResult {
  if (stmt.reader) {
    // INSERT … RETURNING and friends: run them fully; the returned rows are the affected ones.
    const rows = params === undefined ? stmt.all() : stmt.all(params as never);
    return { rowsAffected: rows.length };
  }
  const r = params === undefined ? stmt.run() : stmt.run(params as never);
  return { rowsAffected: r.changes, lastInsertId: r.lastInsertRowid };
}

export class SqliteResource implements Resource {
  readonly kind = 'sqlite';
  readonly capabilities = SQLITE_CAPABILITIES;
  writer: SqliteConnection;
  readonly writerLock = new FifoMutex();
  readonly #readers: { conn: SqliteConnection; lock: FifoMutex }[] = [];
  readonly #spare: SqliteConnection[] = [];
  #closed = false;

  constructor(readonly options: ResolvedSqliteOptions) {
    this.guard = options.allowRawTransactionControl ? undefined : assertNoTransactionControl;
    this.writer = new SqliteConnection(options, 'writer');
    try {
      for (let i = 0; i < options.readers; i++) {
        this.#readers.push({ conn: new SqliteConnection(options, 'reader'), lock: new FifoMutex() });
      }
    } catch (err) {
      this.#closeAll();
      throw err;
    }
  }

  classify(err: unknown): TxkitError {
    return classifySqliteError(err);
  }

  /** Checks user SQL for transaction control; runs once per statement text (on prepare). */
  readonly guard: ((sql: string) => void) | undefined;

  /** The suspended transaction of this handle that holds SQLite's write lock, if any. */
  #suspendedWriter(suspended: readonly ResourceTx[]): SqliteTx | undefined {
    for (const s of suspended) if (s instanceof SqliteTx && s.resource === this && s.holdsWriteLock) return s;
    return undefined;
  }

  #ownsSuspended(suspended: readonly ResourceTx[]): boolean {
    return suspended.some((s) => s instanceof SqliteTx && s.resource === this && s.conn === this.writer);
  }

  #selfDeadlock(what: string, holder: SqliteTx): SelfDeadlockError {
    return new SelfDeadlockError(
      `${what} would wait for SQLite's single write lock, held by its own suspended transaction ${holder.txId}, ` +
        'which cannot finish until this work does. Write in the outer transaction (a nested scope) instead, ' +
        'or run this work after the outer transaction ends.',
    );
  }

  #spareConnection(): SqliteConnection {
    if (this.options.memory) {
      throw new UnsupportedFeatureError(
        "an in-memory SQLite database has a single connection: 'requires_new' and 'not_supported' need a database file",
      );
    }
    return this.#spare.pop() ?? new SqliteConnection(this.options, 'aux');
  }

  #returnSpare(conn: SqliteConnection): void {
    if (this.#closed || this.#spare.length >= 2) conn.close();
    else this.#spare.push(conn);
  }

  begin(req: BeginRequest): Promise<ResourceTx> {
    if (this.options.strictIsolation && req.isolation !== undefined && req.isolation !== 'serializable') {
      return Promise.reject(
        new UnsupportedFeatureError(
          `SQLite runs every transaction serializable; '${req.isolation}' was requested and strictIsolation is on`,
        ),
      );
    }
    const mode =
      (req.extra.beginMode as BeginMode | undefined) ??
      (req.readOnly ? 'deferred' : this.options.defaultBeginMode);
    if (!BEGIN_MODES.includes(mode)) {
      return Promise.reject(
        new InvalidOptionError(
          `beginMode must be one of ${BEGIN_MODES.map((m) => `'${m}'`).join(', ')}, got ${JSON.stringify(mode)}`,
        ),
      );
    }
    if (req.suspended.length > 0 && this.#ownsSuspended(req.suspended)) {
      // requires_new under a suspended transaction of this handle: the writer is taken.
      const holder = this.#suspendedWriter(req.suspended);
      if (holder && !req.readOnly)
        return Promise.reject(this.#selfDeadlock(`read-write ${this.#label(req)}`, holder));
      if (!(this.#readers.length > 0 && req.readOnly)) {
        let conn: SqliteConnection;
        try {
          conn = this.#spareConnection();
        } catch (err) {
          return Promise.reject(err);
        }
        return this.#beginOn(conn, mode, req, () => this.#returnSpare(conn));
      }
    }
    if (req.readOnly && this.#readers.length > 0) {
      const reader = this.#pickReader();
      return this.#lockThenBegin(reader.lock, reader.conn, 'deferred', req);
    }
    return this.#lockThenBegin(this.writerLock, this.writer, mode, req);
  }

  #label(req: BeginRequest): string {
    return `transaction ${req.txId}${req.name ? ` (${req.name})` : ''}`;
  }

  #lockThenBegin(
    lock: FifoMutex,
    conn: SqliteConnection,
    mode: BeginMode,
    req: BeginRequest,
  ): Promise<SqliteTx> {
    const acquired = lock.acquire(this.options.lockWaitTimeoutMs, this.#label(req));
    if (typeof acquired === 'function') return this.#beginOn(conn, mode, req, acquired);
    return acquired.then((release) => this.#beginOn(conn, mode, req, release));
  }

  #beginOn(
    conn: SqliteConnection,
    mode: BeginMode,
    req: BeginRequest,
    release: () => void,
  ): Promise<SqliteTx> {
    const queryOnly = req.readOnly && conn.role !== 'reader';
    try {
      if (queryOnly) conn.control('PRAGMA query_only = ON');
      conn.control(BEGIN_SQL[mode]); // fast path: no lock contention
      return Promise.resolve(new SqliteTx(this, conn, req.txId, mode, req.readOnly, release));
    } catch (err) {
      if (!isBusy(err)) return Promise.reject(this.#abandonBegin(conn, queryOnly, release, err));
    }
    return conn
      .retryBusy(() => conn.control(BEGIN_SQL[mode]), `BEGIN ${mode.toUpperCase()}`)
      .then(
        () => new SqliteTx(this, conn, req.txId, mode, req.readOnly, release),
        (err: unknown) => {
          throw this.#abandonBegin(conn, queryOnly, release, err);
        },
      );
  }

  /** Undoes a failed BEGIN's preparations and returns the classified error. */
  #abandonBegin(conn: SqliteConnection, queryOnly: boolean, release: () => void, err: unknown): TxkitError {
    try {
      if (queryOnly && conn.driver.open) conn.control('PRAGMA query_only = OFF');
    } catch {
      // the BEGIN error is the one to report
    } finally {
      release();
    }
    return classifySqliteError(err);
  }

  #pickReader(): { conn: SqliteConnection; lock: FifoMutex } {
    let best = this.#readers[0]!;
    for (const r of this.#readers) {
      if (!r.lock.locked) return r;
      if (r.lock.waiting < best.lock.waiting) best = r;
    }
    return best;
  }

  query<T>(sql: string, params: Params | undefined, req: AutocommitRequest): Promise<T[]> {
    return this.#autocommit(sql, req, (stmt) => runQuery<T>(stmt, params));
  }

  execute(sql: string, params: Params | undefined, req: AutocommitRequest): Promise<ExecuteResult> {
    return this.#autocommit(sql, req, (stmt) => runExecute(stmt, params));
  }

  async #autocommit<T>(sql: string, req: AutocommitRequest, op: (stmt: Statement) => T): Promise<T> {
    let readOnly: boolean;
    try {
      readOnly = this.writer.prepare(sql, this.guard).readonly;
    } catch (err) {
      throw classifySqliteError(err);
    }
    const run = (conn: SqliteConnection) =>
      conn.retryBusy(() => op(conn.prepare(sql, this.guard)), 'autocommit statement');
    if (req.suspended.length > 0 && this.#ownsSuspended(req.suspended)) {
      const holder = this.#suspendedWriter(req.suspended);
      if (holder && !readOnly) throw this.#selfDeadlock('an autocommit write', holder);
      const conn = this.#spareConnection();
      try {
        return await run(conn);
      } finally {
        this.#returnSpare(conn);
      }
    }
    const target =
      readOnly && this.#readers.length > 0
        ? this.#pickReader()
        : { conn: this.writer, lock: this.writerLock };
    const acquired = target.lock.acquire(this.options.lockWaitTimeoutMs, 'an autocommit statement');
    const release = typeof acquired === 'function' ? acquired : await acquired;
    try {
      return await run(target.conn);
    } finally {
      release();
    }
  }

  /** Replaces the writer after a failure left its state in doubt (closing rolls back). */
  recycleWriter(): void {
    try {
      this.writer.close();
    } catch {
      // already broken
    }
    if (!this.#closed) this.writer = new SqliteConnection(this.options, 'writer');
  }

  get closed(): boolean {
    return this.#closed;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // Let queued work finish first: closing under a running transaction would roll it back.
    const release = await this.writerLock.acquire(this.options.lockWaitTimeoutMs, 'close()');
    try {
      this.#closeAll();
    } finally {
      release();
    }
  }

  #closeAll(): void {
    for (const r of this.#readers) r.conn.close();
    for (const c of this.#spare) c.close();
    this.#spare.length = 0;
    this.writer.close();
  }
}

/** One SQLite transaction on one connection (the writer, a reader, or a spare). */
export class SqliteTx implements ResourceTx {
  readonly isolation: IsolationLevel = 'serializable';
  /** True once this transaction may hold SQLite's write lock. */
  holdsWriteLock: boolean;
  #done = false;

  constructor(
    readonly resource: SqliteResource,
    readonly conn: SqliteConnection,
    readonly txId: string,
    readonly mode: BeginMode,
    readonly readOnly: boolean,
    private readonly unlock: () => void,
  ) {
    this.holdsWriteLock = mode !== 'deferred';
  }

  #prepare(sql: string): Statement {
    try {
      const stmt = this.conn.prepare(sql, this.resource.guard);
      if (!stmt.readonly) this.holdsWriteLock = true;
      return stmt;
    } catch (err) {
      throw classifySqliteError(err);
    }
  }

  querySync<T>(sql: string, params?: Params): T[] {
    const stmt = this.#prepare(sql);
    try {
      return runQuery<T>(stmt, params);
    } catch (err) {
      throw classifySqliteError(err);
    }
  }

  executeSync(sql: string, params?: Params): ExecuteResult {
    const stmt = this.#prepare(sql);
    try {
      return runExecute(stmt, params);
    } catch (err) {
      throw classifySqliteError(err);
    }
  }

  query<T>(sql: string, params?: Params): Promise<T[]> {
    try {
      return Promise.resolve(this.querySync<T>(sql, params));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  execute(sql: string, params?: Params): Promise<ExecuteResult> {
    try {
      return Promise.resolve(this.executeSync(sql, params));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  #control(sql: string): Promise<void> {
    try {
      this.conn.control(sql);
      return Promise.resolve();
    } catch (err) {
      return Promise.reject(classifySqliteError(err));
    }
  }

  savepoint(name: string): Promise<void> {
    return this.#control(`SAVEPOINT "${name}"`);
  }

  rollbackTo(name: string): Promise<void> {
    return this.#control(`ROLLBACK TO "${name}"`);
  }

  release(name: string): Promise<void> {
    return this.#control(`RELEASE "${name}"`);
  }

  usableAfterError(_err: TxkitError): boolean {
    // SQLite undoes only the failing statement, unless it ended the whole transaction itself.
    return this.conn.inTransaction;
  }

  async commit(): Promise<void> {
    if (this.#done) throw new TransactionClosedError('transaction already ended');
    try {
      try {
        this.conn.control('COMMIT'); // fast path: nobody else reading (rollback-journal modes) or locking
      } catch (err) {
        if (!isBusy(err)) throw err;
        await this.conn.retryBusy(() => this.conn.control('COMMIT'), 'COMMIT');
      }
    } catch (err) {
      // A failed COMMIT (busy budget spent, deferred foreign key) leaves the transaction open.
      const classified = classifySqliteError(err);
      const failure =
        classified.code === 'E_CONNECTION'
          ? new CommitOutcomeUnknownError(
              `I/O error during COMMIT: the outcome is unknown (${classified.message})`,
              {
                cause: err,
                ...(classified.driverCode !== undefined ? { driverCode: classified.driverCode } : {}),
              },
            )
          : classified;
      try {
        this.#end(true);
      } catch (rollbackErr) {
        attachRollbackError(failure, rollbackErr); // the COMMIT failure stays the error reported
      }
      throw failure;
    }
    this.#end(false);
  }

  async rollback(): Promise<void> {
    if (this.#done) return;
    this.#end(true);
  }

  #end(rollback: boolean): void {
    this.#done = true;
    try {
      if (rollback && this.conn.driver.open && this.conn.inTransaction) this.conn.control('ROLLBACK');
      if (this.readOnly && this.conn.role !== 'reader') this.conn.control('PRAGMA query_only = OFF');
    } catch (err) {
      // The connection's state is in doubt: replace it rather than hand it on.
      if (this.conn === this.resource.writer) this.resource.recycleWriter();
      else this.conn.close();
      throw classifySqliteError(err);
    } finally {
      this.unlock();
    }
  }
}
