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
  PrepareFailedError,
  SelfDeadlockError,
  TransactionAbortedError,
  TransactionClosedError,
  TransactionRolledBackError,
  TransactionTimeoutError,
  TxkitError,
} from '../../core/errors.js';
import { EventHub } from '../../core/events.js';
import { assertIdentifier } from '../../core/identifier.js';
import type {
  Anomaly,
  AutocommitRequest,
  BeginRequest,
  Capabilities,
  ExecuteResult,
  IsolationLevel,
  Params,
  PreparedInfo,
  Resource,
  ResourceTx,
} from '../../core/resource.js';
import { assertNoTransactionControl } from '../shared/statement-guard.js';
import { sendCancelRequest } from './cancel.js';
import { classifyPgError, isServerError, type PgPhase } from './errors.js';
import {
  type PostgresTransactionOptions,
  type ResolvedPostgresOptions,
  resolveTxOptions,
} from './options.js';
import {
  assertGid,
  commitPrepared,
  listPrepared,
  preflightPrepared,
  prepareTransaction,
  rollbackPrepared,
} from './prepared.js';
import { SelfDeadlockWatch } from './self-deadlock.js';

const ALL: readonly Anomaly[] = [
  'dirty_read',
  'non_repeatable_read',
  'phantom_read',
  'lost_update',
  'read_skew',
  'write_skew',
];
const READ_COMMITTED = Object.freeze({
  effective: 'read committed' as const,
  prevents: Object.freeze(['dirty_read'] as Anomaly[]),
});

/**
 * What each level really prevents on PostgreSQL (verified by test/postgres/isolation.test.ts).
 * REPEATABLE READ is snapshot isolation: a concurrent update of a row it read fails with 40001
 * (no lost update), phantoms are not seen, but write skew is possible.
 */
export const POSTGRES_CAPABILITIES: Capabilities = Object.freeze({
  isolation: Object.freeze({
    'read uncommitted': READ_COMMITTED,
    'read committed': READ_COMMITTED,
    'repeatable read': Object.freeze({
      effective: 'repeatable read' as const,
      prevents: Object.freeze(ALL.filter((a) => a !== 'write_skew')),
    }),
    serializable: Object.freeze({ effective: 'serializable' as const, prevents: Object.freeze([...ALL]) }),
  }),
  defaultIsolation: 'read committed',
  savepoints: true,
  readOnly: true,
  deferrable: true,
  twoPhase: true,
  concurrentTransactions: true,
  statementErrorAbortsTransaction: true,
});

const LEVEL_SQL: Record<IsolationLevel, string> = {
  'read uncommitted': 'READ COMMITTED', // PostgreSQL runs it as READ COMMITTED anyway; say what it is
  'read committed': 'READ COMMITTED',
  'repeatable read': 'REPEATABLE READ',
  serializable: 'SERIALIZABLE',
};

/** Events of a PostgreSQL resource (published on `txkit:pg:<event>`). */
export interface PgResourceEvents {
  /** A connection was destroyed instead of returned to the pool, and why. */
  'connection-destroyed': { reason: string };
  error: { source: string; error: unknown };
}

type PgClient = pg.PoolClient & {
  processID?: number;
  secretKey?: number;
  host?: string;
  port?: number;
  getTransactionStatus?: () => string | null;
};

/** Builds the one BEGIN statement for a request. */
export function beginSql(
  isolation: IsolationLevel | undefined,
  readOnly: boolean,
  deferrable: boolean,
): string {
  let sql = 'BEGIN';
  if (isolation !== undefined) sql += ` ISOLATION LEVEL ${LEVEL_SQL[isolation]}`;
  if (readOnly) sql += ' READ ONLY';
  if (deferrable) sql += ' DEFERRABLE';
  return sql;
}

function positional(params: Params | undefined): unknown[] | undefined {
  if (params === undefined) return undefined;
  if (Array.isArray(params)) return params as unknown[];
  throw new InvalidArgumentError(
    'PostgreSQL takes positional parameters ($1, $2, …): pass an array, not an object',
  );
}

function rowsOf<T>(r: pg.QueryResult | pg.QueryResult[]): T[] {
  const last = Array.isArray(r) ? r[r.length - 1] : r;
  return (last?.rows ?? []) as T[];
}

function affected(r: pg.QueryResult | pg.QueryResult[]): ExecuteResult {
  const list = Array.isArray(r) ? r : [r];
  return { rowsAffected: list.reduce((n, x) => n + (x.rowCount ?? 0), 0) };
}

/** A pooled connection checked out by txkit, watched for failure while it is out. */
/** The lease currently holding each checked-out client (one shared listener, no per-lease closure). */
const leases = new WeakMap<object, Lease>();
function onLeasedClientError(this: object, err: unknown): void {
  const lease = leases.get(this);
  if (!lease) return;
  lease.dead = true;
  lease.deathCause ??= err;
}

class Lease {
  dead = false;
  /** The error that killed the connection (e.g. a FATAL 25P03 idle-in-transaction timeout). */
  deathCause: unknown;
  cancelSent = false;
  #released = false;

  constructor(
    readonly client: PgClient,
    private readonly events: EventHub<PgResourceEvents>,
  ) {
    leases.set(client, this);
    // Attached once per client and kept: a late socket error on any client must not crash the process.
    if (!client.listeners('error').includes(onLeasedClientError)) client.on('error', onLeasedClientError);
  }

  /** Returns the connection only when it is idle and nothing can still hit it; else destroys it. */
  release(doubt?: string): void {
    if (this.#released) return;
    this.#released = true;
    const status = this.client.getTransactionStatus?.();
    const reason =
      doubt ??
      (this.dead
        ? 'the connection failed'
        : this.cancelSent
          ? 'a cancel request was sent on it'
          : status != null && status !== 'I'
            ? `the server reports transaction status '${status}', not idle`
            : undefined);
    leases.delete(this.client);
    if (reason !== undefined) {
      if (this.events.wants('connection-destroyed')) this.events.emit('connection-destroyed', { reason });
      this.client.release(new Error(`txkit: connection destroyed: ${reason}`));
    } else {
      this.client.release();
    }
  }
}

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
    this.pool.on('error', (error) => this.events.emit('error', { source: 'pool', error }));
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
  async acquire(what: string, suspended: readonly ResourceTx[], deadline?: number): Promise<Lease> {
    if (this.#closed) throw new ConnectionLostError('this postgres database has been closed');
    const untilDeadline =
      deadline === undefined ? Number.POSITIVE_INFINITY : Math.max(0, deadline - performance.now());
    const waitMs = Math.min(this.options.acquireTimeoutMs, untilDeadline);
    if (this.pool.idleCount > this.pool.waitingCount) {
      // An idle connection is free for us right now: no need to arm a timeout.
      try {
        return new Lease((await this.pool.connect()) as PgClient, this.events);
      } catch (err) {
        throw classifyPgError(err, { phase: 'connect', nothingSent: true });
      }
    }
    const connecting = this.pool.connect() as Promise<PgClient>;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(
          waitMs === untilDeadline
            ? new TransactionTimeoutError(
                `the transaction deadline passed while ${what} waited for a connection`,
              )
            : this.#poolTimeout(what, suspended, waitMs),
        );
      }, waitMs);
    });
    try {
      const client = await Promise.race([connecting, timedOut]);
      return new Lease(client, this.events);
    } catch (err) {
      connecting.then(
        (c) => c.release(),
        () => {},
      );
      if (err instanceof TxkitError) throw err;
      throw classifyPgError(err, { phase: 'connect', nothingSent: true });
    } finally {
      clearTimeout(timer);
    }
  }

  #poolTimeout(what: string, suspended: readonly ResourceTx[], waitMs: number): PoolTimeoutError {
    const p = this.pool;
    const held = this.#suspendedHere(suspended).length;
    const max = (p as unknown as { options?: { max?: number } }).options?.max ?? 10;
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

  async begin(req: BeginRequest): Promise<ResourceTx> {
    const txOptions = resolveTxOptions(req.extra);
    if (req.deferrable && !(req.isolation === 'serializable' && req.readOnly)) {
      throw new InvalidOptionError(
        "deferrable only has an effect with isolation 'serializable' and readOnly: true",
      );
    }
    const suspendedHere = this.#suspendedHere(req.suspended);
    if (
      suspendedHere.length > 0 &&
      txOptions.lockTimeoutMs === undefined &&
      this.options.suspendedLockTimeoutMs > 0
    ) {
      // An inner transaction waiting on a row lock of its own suspended outer transaction
      // would wait forever (the server sees no cycle): bound the wait.
      txOptions.lockTimeoutMs = this.options.suspendedLockTimeoutMs;
    }
    const label = `transaction ${req.txId}${req.name ? ` (${req.name})` : ''}`;
    const lease = await this.acquire(label, req.suspended, req.deadline);
    const needDefault = req.isolation === undefined && this.#serverDefaultIsolation === undefined;
    try {
      await lease.client.query(beginSql(req.isolation, req.readOnly, req.deferrable));
      await applyLocalSettings(lease.client, txOptions);
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
    let isolation = req.isolation ?? this.#serverDefaultIsolation ?? 'read committed';
    if (isolation === 'read uncommitted') isolation = 'read committed';
    const holders = suspendedHere.map((t) => t.processId).filter((pid): pid is number => pid !== undefined);
    return new PgTx(this, lease, req.txId, isolation, req.readOnly, suspendedHere.length > 0, holders);
  }

  async query<T>(sql: string, params: Params | undefined, req: AutocommitRequest): Promise<T[]> {
    return rowsOf<T>(await this.#autocommit(sql, params, req));
  }

  async execute(sql: string, params: Params | undefined, req: AutocommitRequest): Promise<ExecuteResult> {
    return affected(await this.#autocommit(sql, params, req));
  }

  async #autocommit(
    sql: string,
    params: Params | undefined,
    req: AutocommitRequest,
  ): Promise<pg.QueryResult> {
    this.#guard(sql);
    const values = positional(params);
    const lease = await this.acquire('an autocommit statement', req.suspended);
    // Under a suspended transaction of this database ('not_supported'), a lock held by that
    // transaction would be waited for forever: bound the wait for this one statement.
    const bounded = this.#suspendedHere(req.suspended).length > 0 && this.options.suspendedLockTimeoutMs > 0;
    let doubt: string | undefined;
    try {
      if (bounded) {
        await lease.client.query("SELECT set_config('lock_timeout', $1, false)", [
          String(this.options.suspendedLockTimeoutMs),
        ]);
      }
      // (text, values) rather than a config object: pg clones config objects on every call
      return (await (values === undefined
        ? lease.client.query(sql)
        : lease.client.query(sql, values))) as pg.QueryResult;
    } catch (err) {
      throw classifyPgError(err, { phase: 'statement', connectionLost: lease.dead });
    } finally {
      if (bounded && !lease.dead) {
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

/** `SET LOCAL` equivalents with bound values (SET itself takes no parameters). */
async function applyLocalSettings(client: PgClient, o: PostgresTransactionOptions): Promise<void> {
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
  if (names.length === 0) return;
  const calls = names.map((n, i) => `set_config('${n}', $${i + 1}, true)`).join(', ');
  await client.query(`SELECT ${calls}`, values);
}

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
