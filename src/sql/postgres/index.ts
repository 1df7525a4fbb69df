/**
 * `txkit/postgres` — PostgreSQL transactions on node-postgres (`pg`), with LISTEN/NOTIFY,
 * two-phase commit primitives and monitoring helpers.
 *
 * @example
 * import { postgres } from 'txkit/postgres';
 * const db = postgres({ connectionString: process.env.DATABASE_URL });
 * await db.transaction(async (tx) => {
 *   await tx.execute('UPDATE accounts SET balance = balance - $1 WHERE id = $2', [100, 1]);
 *   await tx.execute('UPDATE accounts SET balance = balance + $1 WHERE id = $2', [100, 2]);
 *   await tx.notify('accounts', '1,2'); // delivered only if this commits
 * }, { isolation: 'serializable', retry: true, lockTimeoutMs: 2_000 });
 */
import pg from 'pg';
import { PostgresResource } from './adapter.js';
import { PostgresDatabase } from './database.js';
import { PG_TRANSACTION_OPTION_KEYS, type PostgresOptions, resolvePostgresOptions } from './options.js';
import { PostgresTransaction } from './transaction.js';

/** Opens a PostgreSQL database: `postgres({ connectionString })`, `postgres({ poolConfig })` or `postgres({ pool })`. */
export function postgres(options: PostgresOptions): PostgresDatabase {
  const resolved = resolvePostgresOptions(options, pg.Pool);
  return new PostgresDatabase(new PostgresResource(resolved), resolved.database, {
    transactionOptionKeys: PG_TRANSACTION_OPTION_KEYS,
    scope: PostgresTransaction,
  });
}

export { beginSql, type PgResourceEvents, PgTx, POSTGRES_CAPABILITIES, PostgresResource } from './adapter.js';
export { sendCancelRequest } from './cancel.js';
export { assertChannel, CHANNEL_PATTERN, NOTIFY_PAYLOAD_MAX_BYTES, quoteChannel } from './channel.js';
export { type PoolStatus, PostgresDatabase } from './database.js';
export { classifyPgError, isConnectionError, type PgErrorContext, type PgPhase } from './errors.js';
export type { PoolEventInfo } from './lease.js';
export {
  type ActivityRow,
  type BlockedRow,
  type BlockingChain,
  chainsOf,
  type LockRow,
  type MonitorOptions,
  PgMonitor,
} from './monitor.js';
export {
  type Notification,
  type NotificationHandler,
  type NotificationIterator,
  NotificationQueueOverflowError,
  NotificationTimeoutError,
  type NotifierEvents,
  type NotifierStats,
  type NotifyErrorInfo,
  notify,
  type OverflowPolicy,
  PgNotifier,
  type PgNotifierOptions,
} from './notify.js';
export type { PostgresOptions, PostgresTransactionOptions } from './options.js';
export {
  assertGid,
  commitPrepared,
  GID_MAX_BYTES,
  GID_PATTERN,
  listPrepared,
  makeGid,
  PreparedTransactionNotFoundError,
  preflightPrepared,
  prepareTransaction,
  rollbackPrepared,
} from './prepared.js';
export { PostgresTransaction } from './transaction.js';
