/**
 * One MySQL transaction on one pooled connection (the resource SPI's `ResourceTx`).
 * Errors that ended the server transaction make it refuse every later statement without
 * sending it; the connection goes back to the pool only when its state is known.
 */
import type mysql2 from 'mysql2/promise';
import {
  InvalidArgumentError,
  ReadOnlyTransactionError,
  TransactionAbortedError,
  TransactionClosedError,
  type TxkitError,
  UnsupportedFeatureError,
} from '../../core/errors.js';
import type {
  ExecuteResult,
  IsolationLevel,
  Params,
  ResourceTx,
  StatementCallback,
} from '../../core/resource.js';
import { InflightStatements } from '../shared/inflight-statements.js';
import type { MysqlResource } from './adapter.js';
import { classificationOf, TransactionStateError, toTxkitError } from './errors.js';
import { quoteName } from './names.js';
import type { ServerInfo } from './server-info.js';
import {
  type Conn,
  checkParams,
  implicitCommitKeyword,
  queryOn,
  SERVER_STATUS_IN_TRANS,
  toExecuteResult,
} from './statement.js';
import { xidSql } from './xa.js';

export interface ServerFacts {
  info: ServerInfo;
  rollbackOnTimeout: boolean;
  defaultIsolation: IsolationLevel;
  globalLockWaitTimeoutSec: number;
  snapshotIsolation: boolean;
}

/** How a statement's result is handed back: as the driver gave it, as rows, or as an ExecuteResult. */
type Shape = 0 | 1 | 2;
const RAW: Shape = 0;
const ROWS: Shape = 1;
const EXECUTE: Shape = 2;

/** A callback-form statement as a promise; a synchronous throw (a refused statement) rejects it. */
function promised<T>(start: (done: StatementCallback<T>) => void): Promise<T> {
  return new Promise<T>((resolve, reject) =>
    start((err, value) => (err ? reject(err) : resolve(value as T))),
  );
}

/** One MySQL transaction on one pooled connection. */
export class MysqlTx implements ResourceTx {
  /** Set when an error ended the server transaction: every later statement is refused. */
  #abortCause: TxkitError | undefined;
  #done = false;
  readonly #inflight = new InflightStatements();
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
    if (this.#done) return new TransactionClosedError(`transaction ${this.txId} has ended`);
    if (this.#abortCause) {
      return new TransactionAbortedError(
        `transaction ${this.txId} was ended by the server (${this.#abortCause.code}); nothing more is sent on it`,
        { cause: this.#abortCause, txId: this.txId },
      );
    }
    return undefined;
  }

  /** Runs one statement; classifies errors and notices when the server ended the transaction. */
  run(sql: string, values: unknown[] | undefined, opts?: { nowait?: boolean }): Promise<unknown> {
    return promised((done) => this.#sendCb(sql, values, opts?.nowait === true, RAW, done));
  }

  /**
   * Sends one statement on the callback API and completes `done` from the driver's
   * callback, with the result shaped there: no promise at all on the happy path.
   */
  #sendCb(
    sql: string,
    values: unknown[] | undefined,
    nowait: boolean,
    shape: Shape,
    done: StatementCallback<unknown>,
  ): void {
    const refused = this.#refuse();
    if (refused) {
      done(refused);
      return;
    }
    this.#inflight.sent();
    try {
      this.conn.query(sql, values, (raw: unknown, result: unknown) => {
        this.#inflight.settled();
        if (raw) {
          this.#failed(raw, nowait, done);
          return;
        }
        let value: unknown;
        try {
          if (!Array.isArray(result)) this.#checkStillInTransaction(result as mysql2.ResultSetHeader);
          value =
            shape === RAW
              ? result
              : shape === ROWS
                ? Array.isArray(result)
                  ? result
                  : []
                : toExecuteResult(result);
        } catch (err) {
          done(err as Error);
          return;
        }
        done(null, value);
      });
    } catch (raw) {
      // The driver refused synchronously (e.g. values it cannot format): nothing was sent.
      this.#inflight.settled();
      this.#failed(raw, nowait, done);
    }
  }

  #failed(raw: unknown, nowait: boolean, done: StatementCallback<unknown>): void {
    let err: TxkitError;
    try {
      err = toTxkitError(raw, {
        flavor: this.facts.info.flavor,
        phase: 'statement',
        rollbackOnTimeout: this.facts.rollbackOnTimeout,
        ...(nowait ? { nowait: true } : {}),
      });
    } catch (classifyErr) {
      done(classifyErr as Error);
      return;
    }
    const c = classificationOf(err);
    if (c && (c.scope === 'transaction' || c.scope === 'connection')) this.#abortCause ??= err;
    else if (c && c.errno !== undefined) {
      this.#confirmStillInTransaction(err).then(
        () => done(err),
        () => done(err),
      );
      return;
    }
    done(err);
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
      const h = await queryOn(this.conn, 'DO 0');
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

  queryCb<T>(sql: string, params: Params | undefined, done: StatementCallback<T[]>): void {
    this.#sql(sql);
    this.#sendCb(sql, checkParams(params), false, ROWS, done as StatementCallback<unknown>);
  }

  executeCb(sql: string, params: Params | undefined, done: StatementCallback<ExecuteResult>): void {
    this.#checkWrite(sql);
    this.#sendCb(sql, checkParams(params), false, EXECUTE, done as StatementCallback<unknown>);
  }

  /** Refuses statements this transaction must not send: implicit commits, writes when READ ONLY. */
  #checkWrite(sql: string): void {
    this.#sql(sql);
    if (this.readOnly && /^\s*(INSERT|UPDATE|DELETE|REPLACE)\b/i.test(sql)) {
      // Refused before sending, like the server's 1792 for ordinary tables (stricter: the
      // server would let a READ ONLY transaction write a TEMPORARY table).
      throw new ReadOnlyTransactionError(`transaction ${this.txId} is READ ONLY`);
    }
  }

  query<T>(sql: string, params?: Params): Promise<T[]> {
    return promised<T[]>((done) => this.queryCb(sql, params, done));
  }

  execute(sql: string, params?: Params): Promise<ExecuteResult> {
    return promised<ExecuteResult>((done) => this.executeCb(sql, params, done));
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
    await this.#inflight.cancelRunning(
      () => this.resource.killQuery(this.conn.threadId),
      () => this.#done,
    );
  }

  commit(): Promise<void> {
    const refused = this.#refuse();
    if (refused) return this.rollback().then(() => Promise.reject(refused));
    if (this.xid !== undefined) return this.#commitXa(this.xid);
    return new Promise((resolve, reject) => {
      try {
        this.conn.query('COMMIT', (raw: unknown) => {
          if (raw) this.#commitFailed(raw).then(resolve, reject);
          else this.#finish(resolve);
        });
      } catch (raw) {
        this.#commitFailed(raw).then(resolve, reject);
      }
    });
  }

  async #commitXa(xid: string): Promise<void> {
    try {
      await queryOn(this.conn, `XA END ${xidSql(xid)}`);
      await queryOn(this.conn, `XA COMMIT ${xidSql(xid)} ONE PHASE`);
    } catch (raw) {
      return this.#commitFailed(raw);
    }
    await new Promise<void>((resolve) => this.#finish(resolve));
  }

  /** COMMIT failed: in doubt (connection gone) or refused (make sure nothing stays open). Always rejects. */
  async #commitFailed(raw: unknown): Promise<never> {
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

  async rollback(): Promise<void> {
    if (this.#done) return;
    try {
      if (this.xid) {
        await queryOn(this.conn, `XA END ${xidSql(this.xid)}`).catch(() => {});
        await queryOn(this.conn, `XA ROLLBACK ${xidSql(this.xid)}`);
      } else {
        await queryOn(this.conn, 'ROLLBACK');
      }
    } catch {
      this.#done = true;
      // A failed ROLLBACK leaves the state in doubt; closing the session rolls it back.
      this.resource.discard(this.conn, 'ROLLBACK failed');
      return;
    }
    await new Promise<void>((resolve) => this.#finish(resolve));
  }

  /**
   * Restores session settings and returns the connection, or destroys it when that fails;
   * then calls `done` (callback style: COMMIT's one promise is the only one on the happy path).
   */
  #finish(done: () => void): void {
    this.#done = true;
    if (!this.sessionChanged) {
      this.#release();
      done();
      return;
    }
    try {
      this.conn.query('SET SESSION innodb_lock_wait_timeout = DEFAULT', (err: unknown) => {
        if (err) this.resource.discard(this.conn, 'could not restore session settings');
        else this.#release();
        done();
      });
    } catch {
      this.resource.discard(this.conn, 'could not restore session settings');
      done();
    }
  }

  #release(): void {
    try {
      this.conn.release();
    } catch {
      this.resource.discard(this.conn, 'could not return the connection to the pool');
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
      await queryOn(this.conn, `XA END ${xidSql(gid)}`);
      await queryOn(this.conn, `XA PREPARE ${xidSql(gid)}`);
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
