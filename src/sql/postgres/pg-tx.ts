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
import type { ExecuteResult, IsolationLevel, Params, ResourceTx } from '../../core/resource.js';
import { assertNoTransactionControl } from '../shared/statement-guard.js';
import type { PostgresResource } from './adapter.js';
import { sendCancelRequest } from './cancel.js';
import { classifyPgError, isServerError, type PgPhase } from './errors.js';
import { affected, type Lease, positional, rowsOf } from './lease.js';
import { assertGid, prepareTransaction } from './prepared.js';
import { SelfDeadlockWatch } from './self-deadlock.js';

/** One PostgreSQL transaction on one pooled connection. */
export class PgTx implements ResourceTx {
  #done = false;
  #aborted: TxkitError | undefined;
  #inflight = 0;
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

  #precheck(sql: string, params: Params | undefined): unknown[] | undefined {
    if (this.#done) throw new TransactionClosedError(`transaction ${this.txId} has ended`);
    if (this.lease.dead) {
      throw classifyPgError(this.#reason(new Error('the connection is closed')), {
        connectionLost: true,
        nothingSent: true,
      });
    }
    if (!this.resource.options.allowRawTransactionControl) assertNoTransactionControl(sql);
    const values = positional(params);
    if (this.#aborted) {
      throw new TransactionAbortedError(
        `transaction ${this.txId} was aborted by an earlier error; roll back (or back to a savepoint) first`,
        { cause: this.#aborted },
      );
    }
    return values;
  }

  /** Sends one statement; failures come back classified (and abort the transaction when the server says so). */
  #send(text: string, values: unknown[] | undefined, phase: PgPhase): Promise<pg.QueryResult> {
    this.#inflight++;
    const c = this.lease.client;
    const sent = (values === undefined ? c.query(text) : c.query(text, values)) as Promise<pg.QueryResult>;
    if (this.holderPids.length > 0 && phase === 'statement' && c.processID !== undefined) {
      this.#watch ??= new SelfDeadlockWatch(this.resource.options.clientConfig, c.processID, this.holderPids);
      this.#watch.watch(sent, (blocker) => {
        this.#selfDeadlock = blocker;
        void this.cancel().catch(() => {});
      });
    }
    return sent.then(
      (r) => {
        this.#inflight--;
        return r;
      },
      (err: unknown) => {
        this.#inflight--;
        // Inside a transaction nothing is committed until COMMIT: a lost connection before it
        // rolled everything back, so re-running the whole transaction is safe.
        const e = classifyPgError(this.#reason(err), {
          phase,
          connectionLost: this.lease.dead,
          nothingSent: phase !== 'commit',
        });
        if (phase !== 'commit' && e.sqlState !== undefined) this.#aborted ??= e;
        if (this.#selfDeadlock !== undefined && e.sqlState === '57014') {
          throw new SelfDeadlockError(
            `transaction ${this.txId} (propagation 'requires_new' or 'not_supported') waited for a lock held by ` +
              `its own suspended outer transaction (server process ${this.#selfDeadlock}), which cannot finish ` +
              'before this one: the statement was cancelled. Do this work in the outer transaction (a nested ' +
              'scope), or after it ends.',
            { cause: e, sqlState: '57014' },
          );
        }
        throw e;
      },
    );
  }

  query<T>(sql: string, params?: Params): Promise<T[]> {
    let values: unknown[] | undefined;
    try {
      values = this.#precheck(sql, params);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#send(sql, values, 'statement').then((r) => rowsOf<T>(r));
  }

  execute(sql: string, params?: Params): Promise<ExecuteResult> {
    let values: unknown[] | undefined;
    try {
      values = this.#precheck(sql, params);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#send(sql, values, 'statement').then(affected);
  }

  async savepoint(name: string): Promise<void> {
    assertIdentifier(name, 'savepoint name');
    this.#precheck('SELECT 1', undefined);
    await this.#send(`SAVEPOINT "${name}"`, undefined, 'savepoint');
  }

  async rollbackTo(name: string): Promise<void> {
    assertIdentifier(name, 'savepoint name');
    if (this.#done) throw new TransactionClosedError(`transaction ${this.txId} has ended`);
    await this.#send(`ROLLBACK TO SAVEPOINT "${name}"`, undefined, 'savepoint');
    this.#aborted = undefined; // the server restored the transaction to the savepoint
  }

  async release(name: string): Promise<void> {
    assertIdentifier(name, 'savepoint name');
    this.#precheck('SELECT 1', undefined);
    await this.#send(`RELEASE SAVEPOINT "${name}"`, undefined, 'savepoint');
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

  async commit(): Promise<void> {
    if (this.#done) throw new TransactionClosedError(`transaction ${this.txId} has ended`);
    if (this.lease.dead) {
      this.#finish('the connection failed');
      if (isServerError(this.lease.deathCause) && this.lease.deathCause.code === '25P03') {
        throw classifyPgError(this.lease.deathCause);
      }
      throw new ConnectionLostError(
        `the connection of transaction ${this.txId} was lost before COMMIT: the server rolled it back`,
        { retryable: true },
      );
    }
    let result: pg.QueryResult;
    try {
      result = await this.#send('COMMIT', undefined, 'commit');
    } catch (err) {
      this.#finish(
        this.lease.dead || (err as TxkitError).code === 'E_COMMIT_UNKNOWN'
          ? 'COMMIT failed in doubt'
          : undefined,
      );
      throw err;
    }
    this.#finish();
    if (result.command !== 'COMMIT') {
      throw new TransactionRolledBackError(
        `COMMIT of transaction ${this.txId} answered ${result.command}: the server had aborted it, nothing was committed`,
      );
    }
  }

  async rollback(): Promise<void> {
    if (this.#done) return;
    if (this.lease.dead) {
      this.#finish('the connection failed'); // the server rolls back a transaction whose session ended
      return;
    }
    try {
      await this.#send('ROLLBACK', undefined, 'rollback');
    } catch (err) {
      const lost = this.lease.dead;
      this.#finish('ROLLBACK failed');
      if (!lost) throw err;
      return;
    }
    this.#finish();
  }

  async cancel(): Promise<void> {
    const c = this.lease.client;
    if (this.#done || this.#inflight === 0 || c.processID === undefined || c.secretKey === undefined) return;
    this.lease.cancelSent = true; // never hand this connection on: the cancel could hit the next user
    await sendCancelRequest({
      host: c.host ?? 'localhost',
      port: c.port ?? 5432,
      processID: c.processID,
      secretKey: c.secretKey,
    });
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
    this.#inflight++;
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
      this.#inflight--;
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
