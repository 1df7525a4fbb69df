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
  TxkitError,
  UnsupportedFeatureError,
} from '../../core/errors.js';
import type { ExecuteResult, IsolationLevel, Params, ResourceTx } from '../../core/resource.js';
import type { MysqlResource } from './adapter.js';
import { classificationOf, TransactionStateError, toTxkitError } from './errors.js';
import { quoteName } from './names.js';
import type { ServerInfo } from './server-info.js';
import {
  type Conn,
  checkParams,
  implicitCommitKeyword,
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
