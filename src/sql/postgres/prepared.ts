/**
 * Two-phase commit primitives for PostgreSQL prepared transactions: PREPARE TRANSACTION,
 * COMMIT PREPARED, ROLLBACK PREPARED, and the pg_prepared_xacts listing. A coordinator
 * (with its durable decision log) builds on these; nothing here decides an outcome.
 *
 * PREPARE TRANSACTION takes a string literal, not a bind parameter, so a GID is validated
 * against a strict character set before it is ever put into SQL.
 */
import { randomUUID } from 'node:crypto';
import {
  InvalidIdentifierError,
  PreparedTransactionsDisabledError,
  PrepareFailedError,
  TxkitError,
} from '../../core/errors.js';
import type { PreparedInfo } from '../../core/resource.js';
import { classifyPgError, sqlStateOf } from './errors.js';

/** Anything that runs a query: a `pg.Client`, a `pg.PoolClient` or a `pg.Pool`. */
export interface Queryable {
  query(text: string, values?: unknown[]): Promise<{ rows: any[]; command: string; rowCount: number | null }>;
}

/** Characters allowed in a GID: safe inside a SQL string literal without escaping. */
export const GID_PATTERN = /^[A-Za-z0-9_.:-]+$/;
/** The server rejects GIDs of 200 bytes or more. */
export const GID_MAX_BYTES = 199;

/** The prepared transaction named by a GID does not exist (never prepared, or already resolved). */
export class PreparedTransactionNotFoundError extends TxkitError {
  constructor(message: string, init: ConstructorParameters<typeof TxkitError>[2] = {}) {
    super('E_2PC_NOT_FOUND', message, { ...init, retryable: false });
  }
}

/**
 * Throws {@link InvalidIdentifierError} unless `gid` is 1-199 bytes of `[A-Za-z0-9_.:-]`.
 * @example assertGid('orders:6f1c…:bank1')
 */
export function assertGid(gid: unknown): asserts gid is string {
  if (typeof gid !== 'string' || !GID_PATTERN.test(gid) || Buffer.byteLength(gid) > GID_MAX_BYTES) {
    const shown =
      typeof gid === 'string' ? JSON.stringify(gid.length > 60 ? `${gid.slice(0, 60)}…` : gid) : String(gid);
    throw new InvalidIdentifierError(
      `invalid transaction GID ${shown}: use 1-${GID_MAX_BYTES} characters from A-Z a-z 0-9 _ . : -`,
    );
  }
}

/**
 * A new GID `<prefix>:<uuid>:<participant>` with a full random UUID (a short random part
 * collides after tens of thousands of transactions).
 * @example makeGid('transfer', 'bank1') // 'transfer:3b7e…:bank1'
 */
export function makeGid(prefix: string, participant: string): string {
  const gid = `${prefix}:${randomUUID()}:${participant}`;
  assertGid(gid);
  return gid;
}

const literal = (gid: string): string => `'${gid}'`;

/**
 * Fails with {@link PreparedTransactionsDisabledError} when the server has
 * `max_prepared_transactions = 0` (its default), before any work is done.
 * Returns the configured maximum.
 */
export async function preflightPrepared(q: Queryable): Promise<number> {
  const { rows } = await q.query('SHOW max_prepared_transactions');
  const max = Number(rows[0]?.max_prepared_transactions);
  if (!(max > 0)) {
    throw new PreparedTransactionsDisabledError(
      'prepared transactions are disabled on this server (max_prepared_transactions = 0): ' +
        'set max_prepared_transactions > 0 in postgresql.conf and restart the server',
    );
  }
  return max;
}

/**
 * Sends `PREPARE TRANSACTION '<gid>'` on the connection holding the open transaction.
 * The server answers an aborted (or absent) transaction with the tag `ROLLBACK` and no
 * error: that is a NO vote and throws {@link PrepareFailedError}. After this call the
 * connection is outside any transaction either way.
 */
export async function prepareTransaction(client: Queryable, gid: string): Promise<void> {
  assertGid(gid);
  let result: { command: string };
  try {
    result = await client.query(`PREPARE TRANSACTION ${literal(gid)}`);
  } catch (err) {
    throw classifyPgError(err, { phase: 'prepare' });
  }
  if (result.command !== 'PREPARE') {
    throw new PrepareFailedError(
      `PREPARE TRANSACTION '${gid}' answered ${result.command}: the transaction had failed and was rolled back (a NO vote)`,
    );
  }
}

async function finish(q: Queryable, verb: 'COMMIT' | 'ROLLBACK', gid: string): Promise<boolean> {
  assertGid(gid);
  try {
    await q.query(`${verb} PREPARED ${literal(gid)}`);
    return true;
  } catch (err) {
    if (sqlStateOf(err) === '42704') return false; // undefined_object: no such prepared transaction
    throw classifyPgError(err, { phase: 'statement' });
  }
}

/**
 * `COMMIT PREPARED '<gid>'` on an autocommit connection to the same database.
 * Throws {@link PreparedTransactionNotFoundError} when no such prepared transaction exists:
 * only a decision log can say whether that means "already committed".
 */
export async function commitPrepared(q: Queryable, gid: string): Promise<void> {
  if (!(await finish(q, 'COMMIT', gid))) {
    throw new PreparedTransactionNotFoundError(
      `no prepared transaction '${gid}' in this database: it was already resolved, or never prepared`,
    );
  }
}

/**
 * `ROLLBACK PREPARED '<gid>'`. Idempotent: a GID that no longer exists counts as rolled
 * back (resolves `false`), as the abort path of two-phase commit requires.
 */
export async function rollbackPrepared(q: Queryable, gid: string): Promise<boolean> {
  return finish(q, 'ROLLBACK', gid);
}

export interface ListPreparedOptions {
  /** Only GIDs starting with this prefix (compared literally, no LIKE wildcards). */
  prefix?: string;
  /** Include other databases' prepared transactions (they can only be resolved from there). */
  allDatabases?: boolean;
}

/** Prepared transactions with their age, oldest first. */
export async function listPrepared(q: Queryable, options: ListPreparedOptions = {}): Promise<PreparedInfo[]> {
  const prefix = options.prefix ?? '';
  const { rows } = await q.query(
    `SELECT gid, prepared, owner, database,
            (extract(epoch FROM clock_timestamp() - prepared) * 1000)::float8 AS age_ms
       FROM pg_prepared_xacts
      WHERE left(gid, length($1)) = $1
        AND ($2 OR database = current_database())
      ORDER BY prepared`,
    [prefix, options.allDatabases === true],
  );
  return rows.map((r) => ({
    gid: r.gid as string,
    preparedAt: r.prepared as Date,
    ageMs: Math.max(0, Math.round(r.age_ms as number)),
    owner: r.owner as string,
    database: r.database as string,
  }));
}
