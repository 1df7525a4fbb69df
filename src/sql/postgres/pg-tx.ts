/**
 * One PostgreSQL transaction on one pooled connection: fail-fast after an aborted statement,
 * COMMIT tag check, server-side cancel, prepare, and self-deadlock diagnosis.
 */
import type pg from 'pg';
import {
  ConnectionLostError,
  PrepareFailedError,
  SelfDeadlockError,
  TransactionAbortedError,
  TransactionClosedError,
  TransactionRolledBackError,
  type TxkitError,
} from '../../core/errors.js';
import { assertIdentifier } from '../../core/identifier.js';
import type {
  ExecuteResult,
  IsolationLevel,
  Params,
  ResourceTx,
  StatementCallback,
} from '../../core/resource.js';
import { InflightStatements } from '../shared/inflight-statements.js';
import { assertNoTransactionControl } from '../shared/statement-guard.js';
import type { PostgresResource } from './adapter.js';
import { sendCancelRequest } from './cancel.js';
import { classifyPgError, isServerError, type PgPhase } from './errors.js';
import { affected, type Lease, type PgResult, positional, rowsOf, sendStatement } from './lease.js';
import { assertGid, prepareTransaction } from './prepared.js';
import { SelfDeadlockWatch } from './self-deadlock.js';
import { discardIfStale } from './statement-names.js';

const ignore = (): void => {};
const commandOf = (r: PgResult): string => (r as pg.QueryResult).command;

/** One PostgreSQL transaction on one pooled connection. */
export class PgTx implements ResourceTx {
  #done = false;
  #aborted: TxkitError | undefined;
  readonly #inflight = new InflightStatements();
  #notified = false;

  constructor(
    readonly resource: PostgresResource,
    private readonly lease: Lease,
    readonly txId: string,
    readonly isolation: IsolationLevel,
    readonly readOnly: boolean,
    /** Begun while another transaction of this database is suspended (requires_new). */
    readonly underSuspended: boolean,
    /** Sessions of the suspended outer transactions: waiting on them is a self-deadlock. */
    private readonly holderPids: readonly number[] = [],
  ) {}

  #watch: SelfDeadlockWatch | undefined;
  #selfDeadlock: number | undefined;

  /** The server process id of this transaction's session (for pg_stat_activity, pg_locks). */
  get processId(): number | undefined {
    return this.lease.client.processID;
  }

  /** Records that this transaction sent NOTIFY (it can then not be prepared). */
  markNotified(): void {
    this.#notified = true;
  }

  /** When the server ended the session with a reason (25P03, 57P01), that reason beats "connection closed". */
  #reason(err: unknown): unknown {
    return this.lease.dead && isServerError(this.lease.deathCause) ? this.lease.deathCause : err;
  }

  /** Throws unless a statement may be sent: the transaction is open and its session alive. */
  #assertOpen(): void {
    if (this.#done) throw new TransactionClosedError(`transaction ${this.txId} has ended`);
    if (this.lease.dead) {
      throw classifyPgError(this.#reason(new Error('the connection is closed')), {
        connectionLost: true,
        nothingSent: true,
      });
    }
  }

  #assertNotAborted(): void {
    if (this.#aborted) {
      throw new TransactionAbortedError(
        `transaction ${this.txId} was aborted by an earlier error; roll back (or back to a savepoint) first`,
        { cause: this.#aborted },
      );
    }
  }

  #precheck(sql: string, params: Params | undefined): unknown[] | undefined {
    this.#assertOpen();
    if (!this.resource.options.allowRawTransactionControl) assertNoTransactionControl(sql);
    const values = positional(params);
    this.#assertNotAborted();
    return values;
  }

  /** Sends one statement and maps its result; for the statements the engine does not track itself. */
  #send<R>(text: string, values: unknown[] | undefined, phase: PgPhase, map: (r: PgResult) => R): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.#sendCb(text, values, phase, map, (err, value) => (err ? reject(err) : resolve(value as R)));
    });
  }

  /**
   * Sends one statement and completes `done` from the driver's callback: no promise at all
   * (pg's promise API would add two, and each costs an async hook on Node 20).
   */
  #sendCb<R>(
    text: string,
    values: unknown[] | undefined,
    phase: PgPhase,
    map: (r: PgResult) => R,
    done: StatementCallback<R>,
  ): void {
    this.#inflight.sent();
    const c = this.lease.client;
    let settleWatch: (() => void) | undefined;
    if (this.holderPids.length > 0 && phase === 'statement' && c.processID !== undefined) {
      const pending = new Promise<void>((r) => {
        settleWatch = r;
      });
      this.#watch ??= new SelfDeadlockWatch(this.resource.options.clientConfig, c.processID, this.holderPids);
      this.#watch.watch(pending, (blocker) => {
        this.#selfDeadlock = blocker;
        void this.cancel().catch(() => {});
      });
    }
    const name = phase === 'statement' ? this.resource.options.statementNames?.nameFor(text) : undefined;
    sendStatement(c, text, values, name, (err, r) => {
      this.#inflight.settled();
      settleWatch?.();
      if (err) {
        // Classified a microtask later, as pg's promise API would: by then a dying socket has
        // marked the lease dead, and a server error is followed by its ReadyForQuery.
        queueMicrotask(() => done(this.#failure(err, phase)));
        return;
      }
      let value: R;
      try {
        value = map(r);
      } catch (mapErr) {
        done(mapErr instanceof Error ? mapErr : new Error(String(mapErr)));
        return;
      }
      done(null, value);
    });
  }

  /** The error a failed statement reports (and aborts the transaction with, when the server says so). */
  #failure(err: unknown, phase: PgPhase): TxkitError {
    // Inside a transaction nothing is committed until COMMIT: a lost connection before it
    // rolled everything back, so re-running the whole transaction is safe.
    const e = classifyPgError(this.#reason(err), {
      phase,
      connectionLost: this.lease.dead,
      nothingSent: phase !== 'commit',
    });
    if (phase !== 'commit' && e.sqlState !== undefined) this.#aborted ??= e;
    discardIfStale(this.lease, e);
    if (this.#selfDeadlock !== undefined && e.sqlState === '57014') {
      return new SelfDeadlockError(
        `transaction ${this.txId} (propagation 'requires_new' or 'not_supported') waited for a lock held by ` +
          `its own suspended outer transaction (server process ${this.#selfDeadlock}), which cannot finish ` +
          'before this one: the statement was cancelled. Do this work in the outer transaction (a nested ' +
          'scope), or after it ends.',
        { cause: e, sqlState: '57014' },
      );
    }
    return e;
  }

  queryCb<T>(sql: string, params: Params | undefined, done: StatementCallback<T[]>): void {
    this.#sendCb(sql, this.#precheck(sql, params), 'statement', rowsOf as (r: PgResult) => T[], done);
  }

  executeCb(sql: string, params: Params | undefined, done: StatementCallback<ExecuteResult>): void {
    this.#sendCb(sql, this.#precheck(sql, params), 'statement', affected, done);
  }

  query<T>(sql: string, params?: Params): Promise<T[]> {
    // A throw in the executor (a refused statement) rejects the promise.
    return new Promise((resolve, reject) =>
      this.queryCb<T>(sql, params, (err, rows) => (err ? reject(err) : resolve(rows!))),
    );
  }

  execute(sql: string, params?: Params): Promise<ExecuteResult> {
    return new Promise((resolve, reject) =>
      this.executeCb(sql, params, (err, result) => (err ? reject(err) : resolve(result!))),
    );
  }

  savepoint(name: string): Promise<void> {
    return this.#savepointCommand(name, 'SAVEPOINT', true, ignore);
  }

  rollbackTo(name: string): Promise<void> {
    // Allowed in an aborted transaction: that is what it is for.
    return this.#savepointCommand(name, 'ROLLBACK TO SAVEPOINT', false, () => {
      this.#aborted = undefined; // the server restored the transaction to the savepoint
    });
  }

  release(name: string): Promise<void> {
    return this.#savepointCommand(name, 'RELEASE SAVEPOINT', true, ignore);
  }

  /** Validates the name and the state, then sends `<command> "<name>"`; refusals reject. */
  #savepointCommand(name: string, command: string, needsHealthy: boolean, done: () => void): Promise<void> {
    try {
      assertIdentifier(name, 'savepoint name');
      if (needsHealthy) {
        this.#assertOpen();
        this.#assertNotAborted();
      } else if (this.#done) {
        throw new TransactionClosedError(`transaction ${this.txId} has ended`);
      }
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#send(`${command} "${name}"`, undefined, 'savepoint', done);
  }

  usableAfterError(err: TxkitError): boolean {
    // A server error aborts the whole transaction; an error raised before anything was
    // sent (bad parameters, rejected SQL) leaves it as it was.
    return (
      !this.lease.dead &&
      err.sqlState === undefined &&
      err.code !== 'E_CONNECTION' &&
      err.code !== 'E_COMMIT_UNKNOWN'
    );
  }

  commit(): Promise<void> {
    if (this.#done) return Promise.reject(new TransactionClosedError(`transaction ${this.txId} has ended`));
    if (this.lease.dead) {
      this.#finish('the connection failed');
      if (isServerError(this.lease.deathCause) && this.lease.deathCause.code === '25P03') {
        return Promise.reject(classifyPgError(this.lease.deathCause));
      }
      return Promise.reject(
        new ConnectionLostError(
          `the connection of transaction ${this.txId} was lost before COMMIT: the server rolled it back`,
          { retryable: true },
        ),
      );
    }
    return new Promise<void>((resolve, reject) => {
      this.#sendCb('COMMIT', undefined, 'commit', commandOf, (err, command) => {
        if (err) {
          const unknown = (err as TxkitError).code === 'E_COMMIT_UNKNOWN';
          this.#finish(this.lease.dead || unknown ? 'COMMIT failed in doubt' : undefined);
          reject(err);
          return;
        }
        this.#finish();
        if (command === 'COMMIT') resolve();
        else
          reject(
            new TransactionRolledBackError(
              `COMMIT of transaction ${this.txId} answered ${command}: the server had aborted it, nothing was committed`,
            ),
          );
      });
    });
  }

  rollback(): Promise<void> {
    if (this.#done) return Promise.resolve();
    if (this.lease.dead) {
      this.#finish('the connection failed'); // the server rolls back a transaction whose session ended
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      this.#sendCb('ROLLBACK', undefined, 'rollback', ignore, (err) => {
        if (err) {
          const lost = this.lease.dead;
          this.#finish('ROLLBACK failed');
          if (lost)
            resolve(); // the server rolls back a transaction whose session ended
          else reject(err);
          return;
        }
        this.#finish();
        resolve();
      });
    });
  }

  async cancel(): Promise<void> {
    const c = this.lease.client;
    const { processID, secretKey } = c;
    if (this.#done || this.#inflight.count === 0 || processID === undefined || secretKey === undefined)
      return;
    this.lease.cancelSent = true; // never hand this connection on: the cancel could hit the next user
    const target = { host: c.host ?? 'localhost', port: c.port ?? 5432, processID, secretKey };
    await this.#inflight.cancelRunning(
      () => sendCancelRequest(target),
      () => this.#done || this.lease.dead,
    );
  }

  async prepare(gid: string): Promise<void> {
    assertGid(gid);
    if (this.#done) throw new TransactionClosedError(`transaction ${this.txId} has ended`);
    if (this.#notified) {
      await this.rollback();
      throw new PrepareFailedError(
        `transaction ${this.txId} sent NOTIFY, and PostgreSQL cannot PREPARE such a transaction; it was rolled back (a NO vote)`,
      );
    }
    this.#inflight.sent();
    try {
      await prepareTransaction(this.lease.client, gid);
    } catch (err) {
      const lost = this.lease.dead;
      this.#finish(lost ? 'the connection failed during PREPARE' : undefined);
      if (lost && (err as TxkitError).sqlState === undefined) {
        throw classifyPgError((err as Error).cause ?? err, { phase: 'prepare', connectionLost: true });
      }
      throw err;
    } finally {
      this.#inflight.settled();
    }
    this.#finish();
  }

  #finish(doubt?: string): void {
    if (this.#done) return;
    this.#done = true;
    void this.#watch?.close();
    this.lease.release(doubt);
  }
}
